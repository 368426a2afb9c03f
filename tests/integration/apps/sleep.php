<?php
/*
 * "sleep:MS" anywhere in the body (on a line of its own): sleeps that
 * long, then answers the body, or with "grow:N" N bytes of 'g' instead.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    $ms = mkt_arg($body, 'sleep');
    if ($ms !== null) {
        usleep($ms * 1000);
    }
    $n = mkt_arg($body, 'grow');
    return $n === null ? $body : str_repeat('g', $n);
};
