<?php
/*
 * Shared by the test applications of tests/integration/test_mkd_php.c.
 * The test copies the applications into mkd's temporary data directory and
 * runs them from there, so __DIR__ is private to one test.
 *
 * A request body that starts with "id:TOKEN\n" is recorded: TOKEN is
 * appended to executed.log before the handler does anything else. The test
 * then checks, from the server's side, that each request ran exactly once
 * (and that none it was refused ran at all). The lock keeps lines of
 * concurrent workers whole.
 */
declare(strict_types=1);

function mkt_record(string $body): void
{
    if (!str_starts_with($body, 'id:')) {
        return;
    }
    $nl = strpos($body, "\n");
    $token = substr($body, 3, $nl === false ? 64 : min($nl - 3, 64));
    $f = fopen(__DIR__ . '/executed.log', 'a');
    if ($f === false) {
        throw new RuntimeException('cannot open executed.log');
    }
    flock($f, LOCK_EX);
    fwrite($f, $token . "\n");
    fflush($f);
    flock($f, LOCK_UN);
    fclose($f);
}

/* The integer after "NAME:" in the body, or null. */
function mkt_arg(string $body, string $name): ?int
{
    return preg_match('/(?:^|\n)' . preg_quote($name, '/') . ':(\d+)/', $body, $m)
        ? (int)$m[1] : null;
}
