<?php
/*
 * For tests/integration/test_observe.py: "throw" throws (an application
 * error), "warn" raises a PHP warning and answers, "sleep:MS" sleeps that
 * long first; anything else is echoed.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    if ($body === 'throw') {
        throw new RuntimeException('observe-test exception');
    }
    if ($body === 'warn') {
        trigger_error('observe-test warning', E_USER_WARNING);
        return 'warned';
    }
    $ms = mkt_arg($body, 'sleep');
    if ($ms !== null) {
        usleep($ms * 1000);
    }
    return $body;
};
