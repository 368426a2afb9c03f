<?php
/*
 * "hang" sleeps far longer than the test waits, so that the test can
 * SIGKILL the worker in the middle of the request; anything else is
 * answered at once with the worker's pid.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    if (str_ends_with($body, 'hang')) {
        sleep(60);
        return 'woke up';
    }
    return 'quick pid=' . getmypid();
};
