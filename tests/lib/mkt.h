/*
 * mkt.h -- test and benchmark plumbing for MKD: start and stop the real
 * `mkd` binary on loopback in a temporary data directory, read its memory
 * and CPU use from /proc, and a small blocking Megaki client built on
 * libmegaki and plain sockets (also used for malformed-peer tests, where
 * the bytes on the wire must be chosen by hand).
 */
#ifndef MKT_H
#define MKT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "megaki.h"

typedef struct mkt_daemon {
    pid_t pid;
    char dir[256];  /* the test's temporary directory */
    char data[300]; /* mkd's data directory: dir unless set */
    char log[300];  /* mkd's stderr */
    char ready[300];
    char ctl[340]; /* control socket */
    char pub[340]; /* server public key to pin */
    uint16_t port;
} mkt_daemon;

/* The mkd binary under test: $MKD_BIN, else the build path compiled in. */
const char *mkt_mkd_path(void);

/* Make a fresh temporary directory for d (d->dir). */
int mkt_daemon_mkdir(mkt_daemon *d);
/* Start mkd serving from d->dir with extra "--key=value" arguments (NULL
 * terminated), on 127.0.0.1 and a port the kernel picks; waits until it
 * listens (up to 30 s, stretched by tl_deadline_ms). Returns 0, or -1
 * with the log's tail printed to stderr. */
int mkt_daemon_start(mkt_daemon *d, const char *const *args);
/* The same without waiting: mkd is started (d->pid), nothing more. For
 * tests of start-ups that must not become ready. */
int mkt_daemon_spawn(mkt_daemon *d, const char *const *args);
/* Send sig and wait up to timeout_ms (stretched by tl_deadline_ms) for
 * the exit; SIGKILL after that.
 * Returns the exit status as from waitpid, or -1 if it had to be killed. */
int mkt_daemon_stop(mkt_daemon *d, int sig, int timeout_ms);
/* Remove the temporary directory. */
void mkt_daemon_cleanup(mkt_daemon *d);
/* The end of a test (a cmocka teardown): stop mkd with SIGTERM if it still
 * runs and require exit 0 (under ASan that includes its leak check), and
 * require no "bug:" line in its log (Pegasus logs one for a refused state
 * transition or a second answer). Then remove the directory, or on failure
 * print the log's tail and keep it. Returns 0 or -1. */
int mkt_daemon_finish(mkt_daemon *d, int timeout_ms);
/* The daemon of a suite that runs one per test, and cmocka fixtures for
 * it: mkt_setup makes its directory, mkt_teardown is mkt_daemon_finish
 * (graceful stop, exit 0, no "bug:" in the log). */
extern mkt_daemon mkt_D;
int mkt_setup(void **state);
int mkt_teardown(void **state);

/* One counter from the status view ("handshakes.full"); -1 if absent. */
long long mkt_status(const mkt_daemon *d, const char *key);
/* Whole status text into buf. */
int mkt_status_text(const mkt_daemon *d, char *buf, size_t cap);
long mkt_rss_kb(pid_t pid);
/* utime + stime of pid in clock ticks. */
long long mkt_cpu_ticks(pid_t pid);
/* The time of one RSA-2048 private operation in seconds (and of a public
 * one into *verify_s unless NULL), as `openssl speed -seconds N rsa2048`
 * measures it now: the benchmarks' baseline. 0 if it cannot run. */
double mkt_openssl_rsa2048(int seconds, double *verify_s);
/* Run mkd with a subcommand and arguments; returns its exit status. */
int mkt_run_mkd(const char *const *argv);
/* The same, with what it wrote to stdout and stderr together in *output
 * (malloc'd, NUL-terminated; NULL if it could not be read). */
int mkt_run_mkd_output(const char *const *argv, char **output);

/* Client configuration pinning the daemon's public key (PEM file). */
mk_client_config *mkt_client_config(const char *pub_path);

/* TCP to 127.0.0.1:port, optionally from src (e.g. "127.0.0.2"). -1 on
 * failure. */
int mkt_tcp_connect(const char *src, uint16_t port);
/* The same, giving up after timeout_ms (errno ETIMEDOUT); 0: no limit. */
int mkt_tcp_connect_within(const char *src, uint16_t port, unsigned timeout_ms);
int mkt_send_all(int fd, const void *p, size_t n);
/* Wait until the peer closes (EOF or reset), discarding input. Returns 0 if
 * it did within timeout_ms, -1 if not. */
int mkt_wait_closed(int fd, int timeout_ms);

typedef struct mkt_client {
    int fd;
    mk_session *s;
    uint8_t *in; /* unframed input */
    size_t in_len, in_cap;
    int closed; /* peer's close record seen */
    int eof;
    unsigned timeout_ms; /* per read; default 10000 */
    uint32_t next_id;
    void *ext; /* responses not yet waited for */
} mkt_client;

/* Connect and handshake (resume with blob if given). Returns MK_OK or an
 * mk_err (MK_ERR_PEER_RETRY_LATER when refused, MK_ERR_IO, ...). */
int mkt_client_open(mkt_client *c, mk_client_config *cc, const char *src,
                    uint16_t port, const uint8_t *blob, size_t blob_len);
/* The same where the connect, and then each read, waits at most
 * timeout_ms (MK_ERR_TIMEOUT after that); the client keeps that per-read
 * timeout. For clients that must never hang (the benchmarks). */
int mkt_client_open_within(mkt_client *c, mk_client_config *cc, const char *src,
                           uint16_t port, const uint8_t *blob, size_t blob_len,
                           unsigned timeout_ms);
/* The same, sending pre[0..pre_len) before the hello (a PROXY header, as
 * a load balancer would), without a ticket. */
int mkt_client_open_after(mkt_client *c, mk_client_config *cc, const char *src,
                          uint16_t port, const uint8_t *pre, size_t pre_len);
/* The same in two steps: connect and send the hello; wait for the
 * handshake to end. */
int mkt_client_start(mkt_client *c, mk_client_config *cc, const char *src,
                     uint16_t port, const uint8_t *blob, size_t blob_len);
int mkt_client_finish(mkt_client *c);
/* One request and its response; *resp malloc'd. If an error record comes
 * instead, returns MK_ERR_PEER_ERROR and *ecode is its code. */
int mkt_client_request(mkt_client *c, const uint8_t *req, size_t len,
                       uint8_t **resp, size_t *resp_len, unsigned *ecode);
/* Send a request without waiting (returns its id in *id). */
int mkt_client_send(mkt_client *c, const uint8_t *req, size_t len,
                    uint32_t *id);
/* Wait for the response to id. */
int mkt_client_wait(mkt_client *c, uint32_t id, uint8_t **resp,
                    size_t *resp_len, unsigned *ecode);
/* The next unit from the server, handled: ev says what it was (DATA and
 * ERROR in the order they arrive, for tests of ordering). out needs
 * MK_HANDLE_OUT_LEN bytes. Not mixed with mkt_client_wait. */
int mkt_client_next_event(mkt_client *c, uint8_t *out, mk_event *ev);
/* Read until the server's close record (or EOF). Returns MK_OK if the
 * authenticated close came. */
int mkt_client_wait_close(mkt_client *c);
int mkt_client_export(mkt_client *c, uint8_t *blob, size_t cap, size_t *len);
int mkt_client_resumed(const mkt_client *c);
/* Send our close record (best effort) and free. */
void mkt_client_close(mkt_client *c);

#endif
