<?php
/*
 * bench/e2e/index.php: the hello-world application of apps/hello/app.php,
 * adapted to PHP-FPM for bench/e2e_bench.sh. Same output, same work: read
 * the request body, answer with the client's address and port, the request's
 * number on its connection, the first 8 characters of the TLS session id,
 * whether it came as early data, and the body's length.
 *
 * nginx supplies what Megaki's context carries (see nginx.conf.in):
 * MK_REQUEST_NUM = $connection_requests, MK_SESSION_ID = $ssl_session_id,
 * MK_EARLY = $ssl_early_data.
 */
declare(strict_types=1);

$body = (string)file_get_contents('php://input');
echo "Hello, world!\n"
    . sprintf("You are %s port %d; this is request %d of session %s%s, %d bytes.\n",
        $_SERVER['REMOTE_ADDR'] ?? '', (int)($_SERVER['REMOTE_PORT'] ?? 0),
        (int)($_SERVER['MK_REQUEST_NUM'] ?? 0),
        substr((string)($_SERVER['MK_SESSION_ID'] ?? ''), 0, 8),
        ($_SERVER['MK_EARLY'] ?? '') === '1' ? ' (early)' : '', strlen($body));
