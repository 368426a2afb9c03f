<?php
/*
 * The front script for PHP-FPM (mkd's `backend = fastcgi`): runs the same
 * application handler as Arcangelo does, once per FastCGI request.
 *
 * The request body is the FastCGI standard input (php://input); the
 * context comes in the MEGAKI_* parameters and REMOTE_ADDR/REMOTE_PORT
 * (docs/MKD.md, "backend = fastcgi"). The application is app.php beside
 * this file, or the file named by the pool's env[MEGAKI_APP]. What the
 * handler returns is the answer's body; an exception or a fatal error
 * makes PHP-FPM answer status 500, which mkd reports to the client as an
 * application error.
 */
declare(strict_types=1);

require_once __DIR__ . '/../../arcangelo/src/Context.php';

(static function (): void {
    $p = $_SERVER;
    $app = getenv('MEGAKI_APP');
    $handler = require ($app !== false && $app !== '' ? $app : __DIR__ . '/app.php');
    $ctx = new Megaki\Context(
        requestId: (int)($p['MEGAKI_REQUEST_ID'] ?? 0),
        connectionId: (int)($p['MEGAKI_CONNECTION_ID'] ?? 0),
        clientAddress: (string)($p['REMOTE_ADDR'] ?? ''),
        clientPort: (int)($p['REMOTE_PORT'] ?? 0),
        sessionId: (string)($p['MEGAKI_SESSION_ID'] ?? ''),
        early: ($p['MEGAKI_EARLY'] ?? '0') === '1',
        workerId: 0, /* PHP-FPM's workers have no slot number */
    );
    $body = file_get_contents('php://input');
    header('Content-Type: application/octet-stream');
    echo $handler($body === false ? '' : $body, $ctx);
})();
