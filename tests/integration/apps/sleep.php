<?php
/*
 * "sleep:MS" anywhere in the body (on a line of its own): sleeps that
 * long, then answers the body.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    $ms = mkt_arg($body, 'sleep');
    if ($ms !== null) {
        usleep($ms * 1000);
    }
    return $body;
};
