<?php
/*
 * Keeps 4 MiB more for each request, for the worker's lifetime (a leak):
 * memory_limit would end the worker after about 30 requests, unless
 * worker_max_rss_kib recycles it first. Answers "pid=PID n=N", N the
 * requests this worker has leaked for.
 */
declare(strict_types=1);

require_once __DIR__ . '/lib.php';

$hog = [];

return function (string $body, Megaki\Context $ctx) use (&$hog): string {
    mkt_record($body);
    // str_repeat writes every byte: the pages are resident, as a real leak's.
    $hog[] = str_repeat(chr(count($hog) & 0xff), 4 << 20);
    return sprintf('pid=%d n=%d', getmypid(), count($hog));
};
