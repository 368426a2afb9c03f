<?php
/*
 * Answers the request body. "grow:N" answers N bytes of 'g' instead (a
 * response of a chosen size, up to and past max_message).
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    $n = mkt_arg($body, 'grow');
    return $n === null ? $body : str_repeat('g', $n);
};
