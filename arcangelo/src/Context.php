<?php
/*
 * Context.php -- what a handler learns about the request besides its body.
 * Part of the application API (docs/WORKER-PROTOCOL.md, "Writing an
 * application"). Nothing here is secret: the session id is the protocol's
 * public session identifier, not a key.
 */
declare(strict_types=1);

namespace Megaki;

final class Context
{
    private bool $recycle = false;

    public function __construct(
        /** The protocol's request id (per connection). */
        public readonly int $requestId,
        /** MKD's connection id, as in MKD's log lines. */
        public readonly int $connectionId,
        /** The client's address as text (IPv4 or IPv6). */
        public readonly string $clientAddress,
        public readonly int $clientPort,
        /** The session id, 32 lowercase hex digits; stable across a
         *  resumed session's connections. */
        public readonly string $sessionId,
        /** The request arrived early (0-RTT, with the handshake): it may be
         *  a replay, so it should not change state (see docs/PROTOCOL.md). */
        public readonly bool $early,
        /** This worker's slot number (the "w<N>" of MKD's log). */
        public readonly int $workerId,
    ) {
    }

    /** Ask for a fresh worker once this request is answered (for example
     *  after loading something large); the answer is not affected. */
    public function recycleWorker(): void
    {
        $this->recycle = true;
    }

    public function recycleRequested(): bool
    {
        return $this->recycle;
    }

    /** The same fields as an array (snake_case keys). */
    public function toArray(): array
    {
        return [
            'request_id' => $this->requestId,
            'connection_id' => $this->connectionId,
            'client_address' => $this->clientAddress,
            'client_port' => $this->clientPort,
            'session_id' => $this->sessionId,
            'early' => $this->early,
            'worker_id' => $this->workerId,
        ];
    }
}
