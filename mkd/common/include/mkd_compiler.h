/*
 * mkd_compiler.h -- MKD_MUST_CHECK: every int-returning function that can
 * fail is marked, so that an ignored result is a compile error (-Werror).
 */
#ifndef MKD_COMPILER_H
#define MKD_COMPILER_H

#if defined(__GNUC__)
#define MKD_MUST_CHECK __attribute__((warn_unused_result))
#else
#define MKD_MUST_CHECK
#endif

#endif
