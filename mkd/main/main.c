/*
 * main.c -- the `mkd` program: find the subcommand (serve by default),
 * read its command line (cmdline.c) and run it.
 */
#include <stdio.h>
#include <string.h>

#include "mkd.h"

#define CONFIG_HELP                                                            \
    "  -c, --config FILE   read the configuration file FILE first\n"           \
    "  --OPTION=VALUE, --OPTION VALUE\n"                                       \
    "                      any configuration option (`mkd config` lists "      \
    "them;\n"                                                                  \
    "                      docs/MKD.md says what each means), checked as in\n" \
    "                      the file; dashes and underscores are the same\n"    \
    "  -h, --help          this help;  --version  the version\n"

#define EXIT_HELP                                                              \
    "Exit status: 0 done, 1 failed (the message says why), 2 a usage or\n"     \
    "configuration error.\n"

static const char serve_help[] =
    "usage: mkd [serve] [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd keygen [--bits=2048|3072|4096] [--out=FILE.pem] [...]\n"
    "       mkd pubkey [--key_file=FILE.pem]\n"
    "       mkd ticket-keys [--rotate|--stage|--promote] [--keep=N] "
    "[--file=FILE]\n"
    "       mkd status [-c FILE] [--control_socket=PATH]\n"
    "       mkd config [--test] [-c FILE] [--OPTION=VALUE ...]\n"
    "       mkd COMMAND --help | mkd --version\n"
    "\n"
    "Serve the Megaki protocol in the foreground (the default command).\n"
    "With no configuration, mkd serves on 127.0.0.1:7410 with a key it\n"
    "generates on first run in its data directory. SIGTERM stops it\n"
    "gracefully, SIGHUP reloads the configuration and the keys.\n"
    "\n" CONFIG_HELP "\n" EXIT_HELP;

static const char keygen_help[] =
    "usage: mkd keygen [--bits=2048|3072|4096] [--out=FILE.pem] [-c FILE]\n"
    "                  [--OPTION=VALUE ...]\n"
    "\n"
    "Generate an RSA server key: FILE.pem (private, mode 0600, never\n"
    "overwritten), FILE.pub.pem and FILE.pub.h (the public key, to pin).\n"
    "Print its key id, public PEM and C array.\n"
    "\n"
    "  --bits N            2048 (default), 3072 or 4096\n"
    "  --out FILE.pem      the private key's file (default: key_file); never\n"
    "                      '-': a private key does not go to standard "
    "output\n" CONFIG_HELP "\n" EXIT_HELP;

static const char pubkey_help[] =
    "usage: mkd pubkey [--key_file=FILE.pem] [-c FILE] [--OPTION=VALUE ...]\n"
    "\n"
    "Print the key id, public PEM and C array of the first key_file.\n"
    "\n" CONFIG_HELP "\n" EXIT_HELP;

static const char ticket_keys_help[] =
    "usage: mkd ticket-keys [--rotate|--stage|--promote] [--keep=N]\n"
    "                       [--file=FILE] [-c FILE] [--OPTION=VALUE ...]\n"
    "\n"
    "Create the ticket-key file if it is missing; with --rotate, prepend a\n"
    "fresh key. Then send SIGHUP to every mkd using the file. Several\n"
    "nodes rotate in two phases: --stage, copy the file to every node,\n"
    "SIGHUP them all; then --promote, copy, SIGHUP them all.\n"
    "\n"
    "  --rotate            add a fresh key in front (it issues at once)\n"
    "  --stage             add a fresh key that accepts, not issues yet\n"
    "  --promote           the staged key issues; the old one accepts\n"
    "  --keep N            keep at most N keys, 1..16 (default\n"
    "                      ticket_keys_keep)\n"
    "  --file FILE         the file (default ticket_key_file); never "
    "'-'\n" CONFIG_HELP "\n" EXIT_HELP;

static const char status_help[] =
    "usage: mkd status [-c FILE] [--control_socket=PATH] [--OPTION=VALUE ...]\n"
    "\n"
    "Print the status view of the mkd that the configuration names, from\n"
    "its control socket.\n"
    "\n" CONFIG_HELP "\n" EXIT_HELP;

static const char config_help[] =
    "usage: mkd config [--test] [-c FILE] [--OPTION=VALUE ...]\n"
    "\n"
    "Print the effective configuration as a configuration file; with\n"
    "--test, check it as `mkd serve` would start with it, without serving\n"
    "or writing anything: the key and ticket-key files, the users, the\n"
    "listen addresses (bound and released; a port in use passes), and one\n"
    "PHP worker loading the application. Every problem is printed; the\n"
    "last line says whether it is OK.\n"
    "\n"
    "  -t, --test          check the configuration instead of printing "
    "it\n" CONFIG_HELP "\n"
    "Exit status: 0 done (with --test: the configuration is OK), 1 a check\n"
    "failed, 2 a usage or configuration error.\n";

static const char spawner_help[] =
    "`mkd spawner` is started by mkd itself: it is not run by hand.\n";

static const mkd_command commands[] = {
    {"serve", mkd_serve, 0, serve_help},
    {"keygen", mkd_cmd_keygen, MKD_TAKES_BITS | MKD_TAKES_OUT, keygen_help},
    {"pubkey", mkd_cmd_pubkey, 0, pubkey_help},
    {"ticket-keys", mkd_cmd_ticket_keys, MKD_TAKES_ROTATE, ticket_keys_help},
    {"status", mkd_cmd_status, 0, status_help},
    {"config", mkd_cmd_config, MKD_TAKES_TEST, config_help},
    /* started by mkd itself, with serve's configuration arguments */
    {"spawner", mkd_cmd_spawner, 0, spawner_help},
};

static const mkd_command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    /* Static: large, and the spawner's arguments point into it. */
    static mkd_cmdline cl;
    const mkd_command *cmd = &commands[0];
    int r;

    if (argc > 1 && argv[1][0] != '-') {
        if ((cmd = find_command(argv[1])) == NULL) {
            fprintf(stderr, "mkd: unknown command '%s'\nTry 'mkd --help'.\n",
                    argv[1]);
            return MKD_EXIT_USAGE;
        }
        argc--; /* the subcommand stands where getopt expects argv[0] */
        argv++;
    }
    if ((r = mkd_cmdline_parse(cmd, argc, argv, &cl)) != MKD_EXIT_OK)
        return r < 0 ? MKD_EXIT_OK : r;
    return cmd->run(&cl);
}
