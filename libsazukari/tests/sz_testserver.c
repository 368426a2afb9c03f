/*
 * sz_testserver -- the test server of testserver.h as a program, for tests
 * written in other languages and for trying the CLI by hand.
 *
 *   sz_testserver [--key PEM] [--no-tickets] [--max-message N] [--ipv6]
 *                 [--exec PROGRAM ARGS...]
 *
 * Without --exec it prints "port N" and serves until its standard input
 * ends. With --exec it runs PROGRAM with every "{port}" in ARGS replaced by
 * the port, waits for it, stops, and exits with the program's status.
 * Run it from the project root (it reads tests/vectors/keys/).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testserver.h"

/* arg with every "{port}" replaced by the port. */
static char *fill_port(const char *arg, unsigned port)
{
    size_t cap = strlen(arg) * 2 + 16, n = 0;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    while (*arg) {
        if (strncmp(arg, "{port}", 6) == 0) {
            n += (size_t)snprintf(out + n, cap - n, "%u", port);
            arg += 6;
        } else {
            out[n++] = *arg++;
        }
    }
    out[n] = 0;
    return out;
}

int main(int argc, char **argv)
{
    ts_config cfg;
    ts_server *s;
    int i, status = 0, code = 0;

    memset(&cfg, 0, sizeof cfg);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            cfg.key = argv[++i];
        else if (strcmp(argv[i], "--no-tickets") == 0)
            cfg.no_tickets = 1;
        else if (strcmp(argv[i], "--max-message") == 0 && i + 1 < argc)
            cfg.max_message = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--ipv6") == 0)
            cfg.ipv6 = 1;
        else if (strcmp(argv[i], "--exec") == 0 && i + 1 < argc)
            break;
        else {
            fprintf(stderr, "usage: sz_testserver [--key PEM] [--no-tickets] "
                            "[--max-message N] [--ipv6] [--exec PROG ARGS]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    s = ts_start(&cfg);
    if (i < argc) {
        char **args = calloc((size_t)(argc - i), sizeof *args);
        pid_t pid;
        int n = 0;
        if (args == NULL)
            return 1;
        for (int j = i + 1; j < argc; j++)
            if ((args[n++] = fill_port(argv[j], ts_port(s))) == NULL)
                return 1;
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            execvp(args[0], args);
            perror(args[0]);
            _exit(127);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
            code = 1;
        else if (WIFEXITED(status))
            code = WEXITSTATUS(status);
        else
            code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        for (int j = 0; j < n; j++)
            free(args[j]);
        free(args);
    } else {
        char buf[256];
        printf("port %u\n", (unsigned)ts_port(s));
        fflush(stdout);
        while (fread(buf, 1, sizeof buf, stdin) > 0)
            ;
    }
    ts_stop(s);
    return code;
}
