<?php
/*
 * A hostile application: told where mkd keeps its secrets and which pid it
 * has, it tries to reach them and reports what it got, one line each:
 * "NAME denied" when the system refused, "NAME GOT ..." when it did not.
 * Used by the privilege-separation test, where every line must be denied.
 *
 * The body is "key:value" lines: mkd (pid), key (private key file),
 * tickets (ticket-key file), data (data directory), socket (control
 * socket).
 */
declare(strict_types=1);

function probe_args(string $body): array
{
    $a = [];
    foreach (explode("\n", $body) as $line) {
        $p = strpos($line, ':');
        if ($p !== false) {
            $a[substr($line, 0, $p)] = substr($line, $p + 1);
        }
    }
    return $a;
}

/* What a read gave: "denied" when it failed. */
function probe_read(string $path): string
{
    $s = @file_get_contents($path, false, null, 0, 64);
    return $s === false ? 'denied' : 'GOT ' . strlen($s) . ' bytes';
}

/* Opening is the check for /proc/PID/mem: reading offset 0 fails anyway. */
function probe_open(string $path): string
{
    $f = @fopen($path, 'r');
    if ($f === false) {
        return 'denied';
    }
    fclose($f);
    return 'GOT it open';
}

function probe_signal(int $pid): string
{
    if ($pid <= 1) {
        return 'denied (no pid)';
    }
    /* SIGSTOP, as an attacker would: were it allowed, mkd would stop. */
    return @posix_kill($pid, SIGSTOP) ? 'GOT it stopped' : 'denied';
}

return function (string $body, Megaki\Context $ctx): string {
    $a = probe_args($body);
    $mkd = (int)($a['mkd'] ?? 0);
    $socket = @stream_socket_client('unix://' . ($a['socket'] ?? '/none'));
    $lines = [
        'uid ' . posix_geteuid(),
        'key ' . probe_read($a['key'] ?? '/none'),
        'tickets ' . probe_read($a['tickets'] ?? '/none'),
        'data ' . (@scandir($a['data'] ?? '/none') === false ? 'denied' : 'GOT a listing'),
        'socket ' . ($socket === false ? 'denied' : 'GOT a connection'),
        'mem ' . probe_open("/proc/$mkd/mem"),
        'environ ' . probe_read("/proc/$mkd/environ"),
        'signal-mkd ' . probe_signal($mkd),
        'signal-parent ' . probe_signal(posix_getppid()),
        'parent-environ ' . probe_read('/proc/' . posix_getppid() . '/environ'),
    ];
    return implode("\n", $lines) . "\n";
};
