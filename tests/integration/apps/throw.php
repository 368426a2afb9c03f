<?php
/* "throw" throws (an application error); anything else is answered. */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    if (str_ends_with($body, 'throw')) {
        echo 'this output is discarded';
        throw new RuntimeException('the secret detail stays in the log');
    }
    return 'fine pid=' . getmypid();
};
