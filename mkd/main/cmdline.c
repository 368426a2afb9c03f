/*
 * cmdline.c -- mkd's command line, read with getopt_long: the options of
 * the subcommand, and every row of the configuration table (mkd_config.h)
 * as --name=VALUE or --name VALUE, the name spelt with underscores or
 * dashes. Values are checked when they are read, as the file's are: a bad
 * number, a value out of range, an unknown or abbreviated option is a
 * usage error that names the option and says what was expected.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "megaki.h"
#include "keys.h"
#include "megaki_version.h"
#include "mkd.h"
#include "mkd_util.h"

enum {
    OPT_VERSION = 256,
    OPT_ROTATE,
    OPT_STAGE,
    OPT_PROMOTE,
    OPT_KEEP,
    OPT_BITS,
    OPT_OUT,
    OPT_FILE,
    OPT_TEST,
    OPT_TABLE = 1024 /* + the row of the configuration table */
};

/* mkd's own options; takes 0: every subcommand has it. */
static const struct {
    struct option o;
    unsigned takes;
} own[] = {
    {{"config", required_argument, NULL, 'c'}, 0},
    {{"help", no_argument, NULL, 'h'}, 0},
    {{"version", no_argument, NULL, OPT_VERSION}, 0},
    {{"bits", required_argument, NULL, OPT_BITS}, MKD_TAKES_BITS},
    {{"out", required_argument, NULL, OPT_OUT}, MKD_TAKES_OUT},
    {{"rotate", no_argument, NULL, OPT_ROTATE}, MKD_TAKES_ROTATE},
    {{"stage", no_argument, NULL, OPT_STAGE}, MKD_TAKES_ROTATE},
    {{"promote", no_argument, NULL, OPT_PROMOTE}, MKD_TAKES_ROTATE},
    {{"keep", required_argument, NULL, OPT_KEEP}, MKD_TAKES_ROTATE},
    {{"file", required_argument, NULL, OPT_FILE}, MKD_TAKES_ROTATE},
    {{"test", no_argument, NULL, OPT_TEST}, MKD_TAKES_TEST},
};

#define NOWN      (sizeof own / sizeof own[0])
#define TABLE_MAX 128 /* rows of the configuration table, with room */

typedef struct parser {
    const mkd_command *cmd;
    mkd_cmdline *cl;
    struct option longs[NOWN + 2 * TABLE_MAX + 1];
    char dashed[TABLE_MAX][64]; /* "max-message" for "max_message" */
    mkd_config scratch;         /* configuration values are checked on it */
} parser;

/* One line naming what is wrong, and where help is. */
static int usage_error(const parser *p, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "mkd %s: ", p->cmd->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'mkd %s --help'.\n", p->cmd->name);
    return MKD_EXIT_USAGE;
}

static void add_long(parser *p, size_t *n, const char *name, int has_arg,
                     int val)
{
    struct option *o = &p->longs[(*n)++];

    o->name = name;
    o->has_arg = has_arg;
    o->flag = NULL;
    o->val = val;
}

/* The subcommand's own options, then each row of the configuration table
 * under both spellings. */
static void build_longs(parser *p)
{
    const char *name;
    size_t n = 0;

    for (size_t i = 0; i < NOWN; i++)
        if (own[i].takes == 0 || (own[i].takes & p->cmd->takes))
            add_long(p, &n, own[i].o.name, own[i].o.has_arg, own[i].o.val);
    for (size_t i = 0; i < TABLE_MAX && (name = mkd_config_option_name(i));
         i++) {
        char *dash = p->dashed[i];
        add_long(p, &n, name, required_argument, OPT_TABLE + (int)i);
        (void)snprintf(dash, sizeof p->dashed[i], "%s", name);
        if (strchr(dash, '_') == NULL)
            continue;
        for (char *c = dash; *c; c++)
            *c = *c == '_' ? '-' : *c;
        add_long(p, &n, dash, required_argument, OPT_TABLE + (int)i);
    }
    memset(&p->longs[n], 0, sizeof p->longs[n]);
}

/* "--key=value" into the command line's text; over[] points past the
 * dashes. */
static int add_override(parser *p, const char *key, const char *value)
{
    mkd_cmdline *cl = p->cl;
    size_t room = sizeof cl->text - cl->text_len;
    int n = snprintf(cl->text + cl->text_len, room, "--%s=%s", key, value);

    if (cl->nover == (int)(sizeof cl->over / sizeof cl->over[0]) || n < 0 ||
        (size_t)n >= room)
        return usage_error(p, "too many options, or too long");
    cl->over[cl->nover++] = cl->text + cl->text_len + 2;
    cl->text_len += (size_t)n + 1;
    return 0;
}

/* A configuration option: checked now, as the file's would be. */
static int take_config(parser *p, const char *name, const char *value)
{
    mkd_diag d;
    int r;

    if ((r = mkd_config_set(&p->scratch, name, value, &d)) != MKD_OK)
        return usage_error(p, "--%s", mkd_diag_text(&d, r));
    return add_override(p, name, value);
}

static int take_bits(parser *p, const char *v)
{
    uint64_t bits = 0;

    if (mkd_parse_uint(v, 2048, 4096, &bits) != MKD_OK ||
        (bits != 2048 && bits != 3072 && bits != 4096))
        return usage_error(p, "--bits: expected 2048, 3072 or 4096, not '%s'",
                           v);
    p->cl->bits = (unsigned)bits;
    return 0;
}

static int take_keep(parser *p, const char *v)
{
    uint64_t keep = 0;

    if (mkd_parse_uint(v, 1, MK_TICKET_KEYS_MAX, &keep) != MKD_OK)
        return usage_error(p, "--keep: expected a number in 1..%d, not '%s'",
                           MK_TICKET_KEYS_MAX, v);
    p->cl->keep = (unsigned)keep;
    return 0;
}

/* Files of secrets are never written to standard output: a private key
 * or a ticket key there ends up in a terminal's scroll-back, a pipe or a
 * log. */
static int take_secret_path(parser *p, const char *opt, const char *v)
{
    if (v[0] == '\0')
        return usage_error(p, "--%s: expected a file name", opt);
    if (strcmp(v, "-") == 0)
        return usage_error(p,
                           "--%s -: a secret key is never written to "
                           "standard output; give a file name",
                           opt);
    return 0;
}

/* ticket-keys --rotate, --stage, --promote: one of them. */
static int take_key_op(parser *p, int ch)
{
    int op = ch == OPT_ROTATE  ? KEYS_TICKET_ROTATE
             : ch == OPT_STAGE ? KEYS_TICKET_STAGE
                               : KEYS_TICKET_PROMOTE;

    if (p->cl->rotate != 0 && p->cl->rotate != op)
        return usage_error(p, "--rotate, --stage and --promote: give one");
    p->cl->rotate = op;
    return 0;
}

/* mkd's own options; 0, -1 (answered: exit 0) or MKD_EXIT_USAGE. */
static int take_own(parser *p, int ch, const char *arg)
{
    mkd_cmdline *cl = p->cl;

    switch (ch) {
    case 'c':
        cl->config_path = arg;
        return 0;
    case 'h':
        fputs(p->cmd->help, stdout);
        return -1;
    case OPT_VERSION:
        printf("mkd %s (Megaki protocol %d)\n", MEGAKI_VERSION,
               MK_PROTOCOL_VERSION);
        return -1;
    case OPT_BITS:
        return take_bits(p, arg);
    case OPT_OUT:
        cl->out = arg;
        return take_secret_path(p, "out", arg);
    case OPT_ROTATE:
    case OPT_STAGE:
    case OPT_PROMOTE:
        return take_key_op(p, ch);
    case OPT_KEEP:
        return take_keep(p, arg);
    case OPT_FILE:
        if (take_secret_path(p, "file", arg) != 0)
            return MKD_EXIT_USAGE;
        return take_config(p, "ticket_key_file", arg);
    case 't':
    case OPT_TEST:
        cl->test = 1;
        return 0;
    default:
        return usage_error(p, "option not handled (a bug)");
    }
}

/* The long option an argument names, by its name before any '='. */
static const struct option *named(const parser *p, const char *arg)
{
    size_t n = strcspn(arg + 2, "=");

    for (const struct option *o = p->longs; o->name != NULL; o++)
        if (strlen(o->name) == n && strncmp(o->name, arg + 2, n) == 0)
            return o;
    return NULL;
}

/* What getopt_long refused ('?' or ':'), said in mkd's words. */
static int refused(const parser *p, int ch, const char *arg)
{
    const struct option *o;
    int len = (int)strcspn(arg, "=");

    if (strncmp(arg, "--", 2) != 0)
        return usage_error(p, "%s '-%c'",
                           ch == ':' ? "no value after" : "unknown option",
                           optopt);
    if ((o = named(p, arg)) == NULL)
        return usage_error(p, "unknown option '%.*s'", len, arg);
    if (ch == ':')
        return usage_error(p, "--%s needs a value", o->name);
    return usage_error(p, "--%s takes no value", o->name);
}

static int take(parser *p, int ch, const char *arg)
{
    if (ch >= OPT_TABLE)
        return take_config(p, mkd_config_option_name((size_t)(ch - OPT_TABLE)),
                           arg);
    return take_own(p, ch, arg);
}

static int parse(parser *p, int argc, char **argv)
{
    const char *shorts = p->cmd->takes & MKD_TAKES_TEST ? "+:c:ht" : "+:c:h";
    int r;

    opterr = 0;
    optind = 1;
    for (;;) {
        int at = optind, idx = -1,
            ch = getopt_long(argc, argv, shorts, p->longs, &idx);
        if (ch == -1)
            break;
        if (ch == '?' || ch == ':')
            return refused(p, ch, argv[at]);
        /* getopt_long takes any unambiguous prefix (--bit for --bits);
         * mkd's options are spelt in full, as in the file. */
        if (idx >= 0 && named(p, argv[at]) != &p->longs[idx])
            return usage_error(p, "'%.*s': write the option in full (--%s)",
                               (int)strcspn(argv[at], "="), argv[at],
                               p->longs[idx].name);
        if ((r = take(p, ch, optarg)) != 0)
            return r;
    }
    if (optind < argc)
        return usage_error(p, "unexpected argument '%s'", argv[optind]);
    return MKD_EXIT_OK;
}

int mkd_cmdline_parse(const mkd_command *cmd, int argc, char **argv,
                      mkd_cmdline *cl)
{
    parser *p = calloc(1, sizeof *p);
    int r;

    if (p == NULL) {
        fprintf(stderr, "mkd: out of memory\n");
        return MKD_EXIT_FAILED;
    }
    memset(cl, 0, sizeof *cl);
    p->cmd = cmd;
    p->cl = cl;
    mkd_config_defaults(&p->scratch);
    build_longs(p);
    r = parse(p, argc, argv);
    free(p);
    return r;
}
