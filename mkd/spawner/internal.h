/*
 * internal.h -- the spawner's internals, shared by its files and its own
 * tests:
 *
 *   msg.c     the message codec (spawner_msg.h)
 *   io.c      one message over the socket, with descriptors attached
 *   serve.c   the spawner process
 *   client.c  mkd's side: starting it, the launcher, exits on the loop
 */
#ifndef SPAWNER_INTERNAL_H
#define SPAWNER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "spawner.h"
#include "spawner_msg.h"

/* Descriptors a message carries at most (SPAWNED: channel and output). */
#define SPAWNER_MAX_FDS 2

/* Send one record (len bytes) with nfds descriptors attached. MKD_OK or
 * MKD_ERR_SYSTEM (errno set). Blocks if the socket is blocking. */
int spawner__send(int fd, const uint8_t *buf, size_t len, const int *fds,
                  int nfds);
/* Receive one record into buf (cap bytes) and the descriptors attached
 * (close-on-exec, at most SPAWNER_MAX_FDS; extra ones are closed and
 * make the record malformed). Returns the record's length, 0 at the end
 * of the stream, or -1 with errno (EAGAIN, EINTR: try again; EBADMSG: a
 * truncated record or too many descriptors). */
long spawner__recv(int fd, uint8_t *buf, size_t cap, int *fds, int *nfds);

/* The spawner process's pid (for tests). */
int spawner__pid(const spawner *s);

#endif
