/*
 * echo.h -- the built-in echo backend: answers every request with its own
 * body. A diagnostic and benchmarking aid (config `backend = echo`): it
 * exercises the whole network and crypto path of MKD with no application
 * behind it.
 */
#ifndef MKD_ECHO_H
#define MKD_ECHO_H

#include <stdint.h>

#include <uv.h>

#include "backend.h"
#include "mkd_err.h"

/* Answers come delay_ms after submit (0: on the next loop iteration).
 * MKD_OK, MKD_ERR_NOMEM or MKD_ERR_LOOP. */
MKD_MUST_CHECK int mkd_echo_new(uv_loop_t *loop, uint32_t delay_ms,
                                mkd_backend **out);

#endif
