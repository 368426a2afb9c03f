/*
 * commands.c -- the operator subcommands: keygen, pubkey, ticket-keys,
 * status, config. Each builds the configuration as serve does, so that
 * `-c FILE` and `--option=value` name the same files. Exit status: 0
 * done, 1 failed, 2 a usage or configuration error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "keys.h"
#include "mkd.h"
#include "mkd_util.h"

/* The configuration, or 2 with the reason on stderr. */
static int config_or_usage(const mkd_cmdline *cl, mkd_config *cfg)
{
    mkd_diag d;
    int r;

    if ((r = mkd_build_config(cl, cfg, &d)) != MKD_OK) {
        fprintf(stderr, "mkd: %s\n", mkd_diag_text(&d, r));
        return 2;
    }
    return 0;
}

/* 0, or 1 with the reason on stderr. */
static int done(int r, const mkd_diag *d)
{
    if (r == MKD_OK)
        return 0;
    fprintf(stderr, "mkd: %s\n", mkd_diag_text(d, r));
    return 1;
}

int mkd_cmd_keygen(const mkd_cmdline *cl)
{
    mkd_config cfg;
    char desc[8192];
    const char *out;
    mkd_diag d;
    int r;

    if ((r = config_or_usage(cl, &cfg)) != 0)
        return r;
    out = cl->out ? cl->out : cfg.key_file;
    if ((r = mkd_mkdirs_for(out, 0700, &d)) != MKD_OK ||
        (r = keys_generate(out, cl->bits ? cl->bits : 2048, NULL, &d)) !=
            MKD_OK ||
        (r = keys_describe(out, desc, sizeof desc, &d)) != MKD_OK)
        return done(r, &d);
    fputs(desc, stdout);
    fprintf(stderr,
            "mkd: private key %s (mode 0600); public key and C array "
            "beside it (.pub.pem, .pub.h)\n",
            out);
    return 0;
}

int mkd_cmd_pubkey(const mkd_cmdline *cl)
{
    mkd_config cfg;
    char desc[8192], *comma;
    mkd_diag d;
    int r;

    if ((r = config_or_usage(cl, &cfg)) != 0)
        return r;
    if ((comma = strchr(cfg.key_file, ',')) != NULL)
        *comma = '\0'; /* the first key */
    if ((r = keys_describe(cfg.key_file, desc, sizeof desc, &d)) != MKD_OK)
        return done(r, &d);
    fputs(desc, stdout);
    return 0;
}

static const char *op_done(int op)
{
    switch (op) {
    case KEYS_TICKET_ROTATE:
        return "rotated";
    case KEYS_TICKET_STAGE:
        return "a new key staged (accepted, not issued yet)";
    case KEYS_TICKET_PROMOTE:
        return "the staged key promoted (it issues now)";
    default:
        return "unchanged";
    }
}

int mkd_cmd_ticket_keys(const mkd_cmdline *cl)
{
    mkd_config cfg;
    const char *path;
    mkd_diag d;
    size_t n = 0;
    int existed, r;

    if ((r = config_or_usage(cl, &cfg)) != 0)
        return r;
    path = cfg.ticket_key_file;
    if ((r = mkd_mkdirs_for(path, 0700, &d)) != MKD_OK)
        return done(r, &d);
    existed = mkd_file_exists(path);
    if ((r = keys_ticket_file_update(path, cl->rotate,
                                     cl->keep ? cl->keep : cfg.ticket_keys_keep,
                                     &n, &d)) != MKD_OK)
        return done(r, &d);
    printf("%s: %s, %zu key(s)%s\n", path,
           !existed ? "created" : op_done(cl->rotate), n,
           cl->rotate || !existed
               ? "; copy it to every node and send SIGHUP to every mkd using it"
               : "");
    return 0;
}

/* Copy everything the socket says to stdout. */
/* The status text to stdout. 0, or 1 when it cannot be read or says the
 * daemon is not ready (the reason then on stderr too: a health check
 * sees why it failed). */
static int relay(int fd)
{
    static char buf[64 * 1024];
    size_t len = 0;
    ssize_t n;
    const char *why;

    while (len < sizeof buf - 1 &&
           (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    if (fwrite(buf, 1, len, stdout) != len || len == 0)
        return 1;
    if (strstr(buf, "\nready no\n") == NULL)
        return 0;
    why = strstr(buf, "\nready.reason ");
    fprintf(stderr, "mkd: not ready: %.*s\n",
            why != NULL ? (int)strcspn(why + 15, "\n") : 7,
            why != NULL ? why + 15 : "unknown");
    return 1;
}

int mkd_cmd_status(const mkd_cmdline *cl)
{
    mkd_config cfg;
    struct sockaddr_un sa;
    size_t len;
    int fd, r;

    if ((r = config_or_usage(cl, &cfg)) != 0)
        return r;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if ((len = strlen(cfg.control_socket)) >= sizeof sa.sun_path) {
        fprintf(stderr, "mkd: control socket path too long\n");
        return 2;
    }
    memcpy(sa.sun_path, cfg.control_socket, len);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "mkd: cannot reach %s: %s (is mkd running?)\n",
                cfg.control_socket, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    r = relay(fd);
    close(fd);
    return r;
}

int mkd_cmd_config(const mkd_cmdline *cl)
{
    mkd_config cfg;
    char buf[8192];
    int r;

    if ((r = config_or_usage(cl, &cfg)) != 0)
        return r;
    if (cl->test)
        return mkd_config_test(&cfg);
    fwrite(buf, 1, mkd_config_dump(&cfg, buf, sizeof buf), stdout);
    return 0;
}
