/*
 * testserver.h -- a Megaki server for tests, built on libmegaki alone: a
 * thread accepts on loopback (ephemeral port) and each connection is served
 * by its own thread with mk_session_new_server.
 *
 * It echoes requests, except that a request starting with '!' is a script:
 *   !err CODE [TEXT]   answer with an error record (code, text)
 *   !silent            never answer this request
 *   !sleep MS          answer "slept" after MS milliseconds
 *   !big N             answer with N pattern bytes (tu-style pattern)
 *   !hold              answer later: held until a !flush
 *   !flush             answer the held requests in reverse order, then this
 *   !cut               send half of a two-record response, then hang up
 *   !garbage           send bytes that are no Megaki unit, keep the socket
 *   !badmac            send a DATA record with a corrupted tag
 *   !connerr CODE      send a connection-level error record (id 0)
 *   !closerec          send an authenticated close record
 *   !lastword          answer "last word" and a close record in one write
 *   !hangup            close the TCP connection without a close record
 *
 * Whole-server behaviours (ts_config.mode) act before any key exists.
 * Everything received is recorded so tests can say what the client sent.
 */
#ifndef SZ_TESTSERVER_H
#define SZ_TESTSERVER_H

#include <stddef.h>
#include <stdint.h>

enum ts_mode {
    TS_NORMAL = 0,
    TS_SILENT_HELLO,  /* read the hello, never answer */
    TS_GARBAGE_HELLO, /* answer the hello with an HTTP error */
    TS_BUSY,          /* answer with a "retry later" alert (1500 ms) */
    TS_HANGUP_ACCEPT, /* accept, then close at once */
    TS_TAMPER_HELLO,  /* flip a byte of the SERVER_HELLO (a MITM) */
    TS_REJECT_HELLO,  /* answer with a "handshake failed" alert */
    TS_RETRY_TICKET   /* answer every hello with HELLO_RETRY reason 1
                         ("ticket not accepted"), listing the server key */
};

typedef struct ts_config {
    const char *key;      /* private key PEM path; default server2048.pem */
    const char *key2;     /* optional second server key */
    int no_tickets;       /* disable resumption */
    uint32_t max_message; /* 0: libmegaki default */
    uint32_t max_inflight;
    int mode; /* enum ts_mode */
    int ipv6; /* listen on ::1 instead of 127.0.0.1 */
} ts_config;

typedef struct ts_stats {
    unsigned conns;   /* TCP connections accepted */
    unsigned full_hs; /* handshakes completed, by kind */
    unsigned resumed_hs;
    unsigned hello_units; /* CLIENT_HELLO units received */
    unsigned data_units;  /* DATA units received */
    unsigned close_units; /* CLOSE units received */
    unsigned requests;    /* complete requests received */
    uint64_t bytes_in;    /* everything received */
    uint64_t hello_bytes; /* of which in CLIENT_HELLO units */
} ts_stats;

typedef struct ts_server ts_server;

/* Start listening and serving; aborts on failure (tests only). */
ts_server *ts_start(const ts_config *cfg);
uint16_t ts_port(const ts_server *s);
/* Serve an already connected stream socket (socketpair end); the server
 * owns fd from now on. */
void ts_adopt(ts_server *s, int fd);
void ts_get_stats(ts_server *s, ts_stats *st);
/* Wait (up to ms) until the stats satisfy "conns finished >= n". */
int ts_wait_conns_done(ts_server *s, unsigned n, unsigned ms);
/* Stop accepting, end every connection, join all threads, free. */
void ts_stop(ts_server *s);

/* The response pattern of "!big N". */
void ts_pattern(uint8_t *p, size_t n, uint32_t seed);

#endif
