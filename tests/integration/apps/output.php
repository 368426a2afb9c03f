<?php
/*
 * Writes to the process's stdout and stderr (both go to MKD's log, never
 * to the response), raises a notice (logged), and answers with what it
 * echoed and returned: the response must be exactly that.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

return function (string $body, Megaki\Context $ctx): string {
    mkt_record($body);
    $tag = trim(substr($body, (int)strrpos($body, "\n")));
    fwrite(STDOUT, "to-stdout $tag\n");
    fwrite(STDERR, "to-stderr $tag\n");
    file_put_contents('php://stdout', "via-php-stdout $tag\n");
    trigger_error("a notice $tag", E_USER_NOTICE);
    echo 'echoed ';
    print 'printed ';
    return 'returned conn=' . $ctx->connectionId;
};
