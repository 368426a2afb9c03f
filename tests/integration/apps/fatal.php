<?php
/*
 * Fatal errors, which end the worker: "oom" runs past memory_limit,
 * "user" raises E_USER_ERROR. Anything else is answered.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    if (str_ends_with($body, 'oom')) {
        $hog = str_repeat('x', 1 << 30);
        return (string)strlen($hog);
    }
    if (str_ends_with($body, 'user')) {
        trigger_error('a fatal user error', E_USER_ERROR);
    }
    return 'alive pid=' . getmypid();
};
