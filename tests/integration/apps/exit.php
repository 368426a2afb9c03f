<?php
/*
 * "exit" echoes something, then calls exit(): the worker ends, and what
 * was echoed is the response (docs/WORKER-PROTOCOL.md, as PHP-FPM does).
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    if (str_ends_with($body, 'exit')) {
        echo 'partial output';
        exit(3);
    }
    return 'alive pid=' . getmypid();
};
