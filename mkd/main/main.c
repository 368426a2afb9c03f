/*
 * main.c -- the `mkd` program: read the command line and run the
 * subcommand it names (serve by default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "megaki.h"
#include "megaki_version.h"
#include "mkd.h"

static const char usage_text[] =
    "usage: mkd [serve] [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd keygen [--bits=2048|3072|4096] [--out=FILE.pem] [...]\n"
    "       mkd pubkey [--key_file=FILE.pem]\n"
    "       mkd ticket-keys [--rotate] [--keep=N] [--ticket_key_file=F]\n"
    "       mkd status [-c FILE] [--control_socket=PATH]\n"
    "       mkd config [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd --version | --help\n"
    "\n"
    "Every configuration option (docs/MKD.md) can be given on the command\n"
    "line as --option=value (dashes and underscores are the same).\n"
    "With no configuration, mkd serves on 127.0.0.1:7410 with a key it\n"
    "generates on first run in its data directory.\n";

static const struct {
    const char *name;
    int (*run)(const mkd_cmdline *cl);
} commands[] = {
    {"serve", mkd_serve},         {"keygen", mkd_cmd_keygen},
    {"pubkey", mkd_cmd_pubkey},   {"ticket-keys", mkd_cmd_ticket_keys},
    {"status", mkd_cmd_status},   {"config", mkd_cmd_config},
    {"spawner", mkd_cmd_spawner}, /* started by mkd itself; not listed */
};

static void add_override(mkd_cmdline *cl, char *kv)
{
    if (cl->nover < (int)(sizeof cl->over / sizeof cl->over[0]))
        cl->over[cl->nover++] = kv;
}

/* One argument after the subcommand. Returns 0 to go on, 1 when it was
 * fully handled (help, version: exit 0), -1 for a bad argument. */
static int take_arg(mkd_cmdline *cl, int argc, char **argv, int *i)
{
    char *a = argv[*i];

    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
        fputs(usage_text, stdout);
        return 1;
    } else if (strcmp(a, "--version") == 0) {
        printf("mkd %s (Megaki protocol %d)\n", MEGAKI_VERSION,
               MK_PROTOCOL_VERSION);
        return 1;
    } else if (strcmp(a, "-c") == 0 && *i + 1 < argc) {
        cl->config_path = argv[++*i];
    } else if (strncmp(a, "--config=", 9) == 0) {
        cl->config_path = a + 9;
    } else if (strcmp(a, "--rotate") == 0) {
        cl->rotate = 1;
    } else if (strncmp(a, "--keep=", 7) == 0) {
        cl->keep = (unsigned)atoi(a + 7);
    } else if (strncmp(a, "--bits=", 7) == 0) {
        cl->bits = (unsigned)atoi(a + 7);
    } else if (strncmp(a, "--out=", 6) == 0) {
        cl->out = a + 6;
    } else if (strncmp(a, "--file=", 7) == 0) {
        snprintf(cl->file_over, sizeof cl->file_over, "ticket_key_file=%s",
                 a + 7);
        add_override(cl, cl->file_over);
    } else if (strncmp(a, "--", 2) == 0 && strchr(a, '=') != NULL) {
        add_override(cl, a + 2);
    } else {
        fprintf(stderr, "mkd: unexpected argument \"%s\"\n%s", a, usage_text);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mkd_cmdline cl;
    const char *cmd = "serve";
    int i = 1, r;

    memset(&cl, 0, sizeof cl);
    if (argc > 1 && argv[1][0] != '-')
        cmd = argv[i++];
    for (; i < argc; i++)
        if ((r = take_arg(&cl, argc, argv, &i)) != 0)
            return r > 0 ? 0 : 2;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(cmd, commands[k].name) == 0)
            return commands[k].run(&cl);
    fprintf(stderr, "mkd: unknown command \"%s\"\n%s", cmd, usage_text);
    return 2;
}
