<?php
/*
 * Arcangelo's tests: the frame codec against the shared vectors
 * (tests/vectors/worker-ipc.txt, also run by the C codec's tests), the
 * severity tags of what it logs (tests/vectors/worker-output.txt, also
 * run by the C tests of Pegasus' reading of them), and
 * the worker loop, driven as Pegasus drives it: a real `php arcangelo.php`
 * child with a socket pair on fd 3.
 *
 *   php arcangelo/tests/run.php [filter]
 *
 * Prints one line per test and "N passed, N failed"; exits 1 on failure.
 */
declare(strict_types=1);

const ROOT = __DIR__ . '/../..';
const ARCANGELO = ROOT . '/arcangelo/bin/arcangelo.php';
const APPS = __DIR__ . '/apps';

require ROOT . '/arcangelo/src/Frame.php';
require ROOT . '/arcangelo/src/Channel.php';
require ROOT . '/arcangelo/src/Context.php';
require ROOT . '/arcangelo/src/Worker.php';

use Megaki\Arcangelo\Frame;
use Megaki\Arcangelo\Worker;

final class Failure extends Exception
{
}

function check(bool $cond, string $what): void
{
    if (!$cond) {
        throw new Failure($what);
    }
}

function same(mixed $got, mixed $want, string $what): void
{
    if ($got !== $want) {
        throw new Failure(sprintf('%s: got %s, want %s', $what, var_export($got, true),
            var_export($want, true)));
    }
}

/* ------------------------------------------------------------------ */
/* A worker child, as Pegasus runs it                                  */

final class Child
{
    /** @var resource */
    public $proc;
    /** @var resource */
    public $sock;
    /** @var resource[] */
    private array $pipes = [];
    private string $rx = '';
    public string $stdout = '';
    public string $stderr = '';
    public int $pid;
    public ?int $exit = null;

    public function __construct(string $app, array $opts = [])
    {
        $pair = stream_socket_pair(STREAM_PF_UNIX, STREAM_SOCK_STREAM, STREAM_IPPROTO_IP);
        check($pair !== false, 'socket pair');
        [$mine, $theirs] = $pair;
        // PHP cannot mark our end close-on-exec, so the child would hold
        // it and never see EOF: bash closes every fd above 3 first, as
        // libuv's close-on-exec descriptors do under Pegasus.
        $cmd = array_merge(['/bin/bash', '-c',
            'for f in /proc/$$/fd/*; do n=${f##*/}; if [ "$n" -gt 3 ]; then eval "exec $n>&-"; fi; done; exec "$@"',
            'arcangelo', PHP_BINARY, ARCANGELO], $opts, ['--', $app]);
        $desc = [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w'], 3 => $theirs];
        $this->proc = proc_open($cmd, $desc, $this->pipes, dirname($app), ['PATH' => '/usr/bin:/bin']);
        check(is_resource($this->proc), 'proc_open');
        fclose($theirs);
        $this->sock = $mine;
        stream_set_blocking($this->sock, false);
        stream_set_blocking($this->pipes[1], false);
        stream_set_blocking($this->pipes[2], false);
        $this->pid = proc_get_status($this->proc)['pid'];
    }

    public function send(string $frame): void
    {
        stream_set_blocking($this->sock, true);
        $off = 0;
        while ($off < strlen($frame)) {
            $w = fwrite($this->sock, substr($frame, $off));
            check($w !== false && $w > 0, 'write to worker');
            $off += $w;
        }
        stream_set_blocking($this->sock, false);
    }

    /** The next frame, or null at end of stream. */
    public function frame(float $timeout = 10.0): ?array
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            [$res, $f, $used] = Frame::decode($this->rx);
            if ($res === Frame::OK) {
                $this->rx = substr($this->rx, $used);
                return $f;
            }
            check($res === Frame::NEED_MORE, "bad frame from worker ($res)");
            $this->drainPipes();
            $left = $deadline - microtime(true);
            check($left > 0, 'timed out waiting for a frame; stderr: ' . $this->stderr);
            $r = [$this->sock];
            $w = $e = null;
            if (stream_select($r, $w, $e, 0, (int)min($left * 1e6, 100000)) > 0) {
                $chunk = fread($this->sock, 1 << 20);
                if ($chunk === '' || $chunk === false) {
                    if (feof($this->sock)) {
                        check($this->rx === '', 'end of stream inside a frame');
                        return null;
                    }
                    continue;
                }
                $this->rx .= $chunk;
            }
        }
    }

    public function hello(): array
    {
        $f = $this->frame();
        check($f !== null, 'no HELLO; stderr: ' . $this->stderr);
        same($f['type'], Frame::HELLO, 'first frame is HELLO');
        same($f['version'], 1, 'protocol version');
        same($f['pid'], $this->pid, 'HELLO pid');
        check(str_starts_with($f['software'], 'arcangelo/'), 'software');
        return $f;
    }

    /** Send one request and return the answer frame. */
    public function ask(string $body, int $rid = 1, string $tag = "TAG\x00\x01\x02\x03\xff"): array
    {
        $this->send(Frame::request($tag, 77, $rid, '198.51.100.7', 40000,
            str_repeat("\xab", 16), false, $body));
        $f = $this->frame();
        check($f !== null, "no answer to $body; stderr: " . $this->stderr);
        same($f['tag'], $tag, 'answer tag');
        return $f;
    }

    private function drainPipes(): void
    {
        foreach ([1 => 'stdout', 2 => 'stderr'] as $i => $field) {
            while (is_resource($this->pipes[$i]) && ($c = fread($this->pipes[$i], 65536)) !== false
                && $c !== '') {
                $this->$field .= $c;
            }
        }
    }

    /** Wait for the exit (closing our end first if asked). */
    public function wait(bool $close = false, float $timeout = 10.0): int
    {
        if ($close && is_resource($this->sock)) {
            fclose($this->sock);
        }
        $deadline = microtime(true) + $timeout;
        while (true) {
            $st = proc_get_status($this->proc);
            if (!$st['running']) {
                $this->exit = $st['signaled'] ? 128 + $st['termsig'] : $st['exitcode'];
                break;
            }
            check(microtime(true) < $deadline, 'worker did not exit');
            usleep(5000);
        }
        $this->drainPipes();
        foreach ([1, 2] as $i) {
            stream_set_blocking($this->pipes[$i], true);
            $field = $i === 1 ? 'stdout' : 'stderr';
            $this->$field .= (string)stream_get_contents($this->pipes[$i]);
            fclose($this->pipes[$i]);
        }
        proc_close($this->proc);
        return $this->exit;
    }

    public function kill(): void
    {
        if ($this->exit === null) {
            proc_terminate($this->proc, 9);
            $this->wait(true);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Codec                                                               */

function vectors(): array
{
    $out = [];
    foreach (file(ROOT . '/tests/vectors/worker-ipc.txt') as $line) {
        $line = trim($line);
        if ($line === '' || $line[0] === '#') {
            continue;
        }
        [$name, $expect, $hex] = explode(' ', $line);
        $out[$name] = [$expect, hex2bin($hex)];
    }
    return $out;
}

function reencode(array $f): string
{
    return match ($f['type']) {
        Frame::HELLO => Frame::hello($f['version'], $f['pid'], $f['software']),
        Frame::REQUEST => Frame::request($f['tag'], $f['conn_id'], $f['request_id'], $f['addr'],
            $f['port'], $f['session_id'], $f['early'], $f['data']),
        Frame::RESPONSE => Frame::response($f['tag'], $f['flags'], $f['data']),
        Frame::APP_ERROR => Frame::appError($f['tag'], $f['flags'], $f['data']),
        Frame::SHUTDOWN => Frame::shutdown(),
    };
}

$tests['codec: shared vectors'] = function (): void {
    $codes = ['ok' => Frame::OK, 'ok_ext' => Frame::OK, 'need' => Frame::NEED_MORE,
              'too_large' => Frame::E_TOO_LARGE, 'type' => Frame::E_TYPE,
              'malformed' => Frame::E_MALFORMED];
    $v = vectors();
    check(count($v) >= 25, 'vector count');
    foreach ($v as $name => [$expect, $bytes]) {
        [$res, $f, $used] = Frame::decode($bytes);
        same($res, $codes[$expect], "$name result");
        if ($res === Frame::OK) {
            same($used, strlen($bytes), "$name consumed");
            if ($expect === 'ok') {
                same(bin2hex(reencode($f)), bin2hex($bytes), "$name re-encoding");
            }
        }
    }
};

$tests['log: severity tags (shared vectors)'] = function (): void {
    $n = 0;
    foreach (file(ROOT . '/tests/vectors/worker-output.txt') as $row) {
        $row = rtrim($row, "\n");
        if ($row === '' || $row[0] === '#') {
            continue;
        }
        [, $line] = explode('|', $row, 3);
        if (preg_match('/^<(\d)>arcangelo: (.*)$/', $line, $m)) {
            same(Worker::tagged($m[2], (int)$m[1]), $line . "\n", "what log() writes for $line");
            $n++;
        }
    }
    check($n >= 4, 'vectors with arcangelo lines');
    // A message of several lines: each one tagged, so MKD logs them all
    // at its level.
    same(Worker::tagged("boom\nStack trace:\n#0 {main}", Worker::ERR),
        "<3>arcangelo: boom\n<3>Stack trace:\n<3>#0 {main}\n", 'every line tagged');
};

$tests['codec: fields and truncation'] = function (): void {
    $v = vectors();
    [$res, $f] = Frame::decode($v['request_v4_early'][1]);
    same($res, Frame::OK, 'decode');
    same($f['tag'], "\x01\x02\x03\x04\x05\x06\x07\x08", 'tag');
    same($f['conn_id'], 99, 'conn');
    same($f['request_id'], 7, 'rid');
    same($f['port'], 51234, 'port');
    same($f['early'], true, 'early');
    same($f['addr'], '192.0.2.1', 'addr');
    same(bin2hex($f['session_id']), '000102030405060708090a0b0c0d0e0f', 'sid');
    same($f['data'], 'hello', 'body');
    [$res, $f] = Frame::decode($v['request_v6'][1]);
    same($f['request_id'], 0xffffffff, 'u32 request id');
    foreach ($v as $name => [$expect, $bytes]) {
        if (!str_starts_with($expect, 'ok')) {
            continue;
        }
        for ($k = 0; $k < strlen($bytes); $k++) {
            [$res, , $used] = Frame::decode(substr($bytes, 0, $k));
            same($res, Frame::NEED_MORE, "$name cut at $k");
            same($used, $k < 5 ? 0 : strlen($bytes), "$name cut at $k size");
        }
    }
    // Two frames in one buffer: the first alone is consumed.
    $two = Frame::shutdown() . Frame::hello(1, 5);
    [$res, $f, $used] = Frame::decode($two);
    same([$res, $f['type'], $used], [Frame::OK, Frame::SHUTDOWN, 5], 'first of two');
    // A limit below the hard maximum is judged on the header.
    same(Frame::header(Frame::response('12345678', 0, str_repeat('x', 100)), 108)[0],
        Frame::E_TOO_LARGE, 'limit');
    same(strlen(Frame::appError('12345678', 0, str_repeat('e', 2000))), 5 + 9 + 1024,
        'error text is cut to 1024');
};

/* ------------------------------------------------------------------ */
/* The loop                                                            */

$tests['loop: hello, echo, return, context'] = function (): void {
    $c = new Child(APPS . '/testapp.php', ['--worker=7', '--max-message=65536']);
    try {
        $c->hello();
        $f = $c->ask('echo:hi there');
        same([$f['type'], $f['flags'], $f['data']], [Frame::RESPONSE, 0, 'hi there'], 'echo');
        $f = $c->ask('mixed');
        same($f['data'], 'ab', 'echoed output comes first, then the returned string');
        $f = $c->ask('ctx', 12345);
        $ctx = json_decode($f['data'], true);
        same($ctx, ['request_id' => 12345, 'connection_id' => 77, 'client_address' => '198.51.100.7',
            'client_port' => 40000, 'session_id' => str_repeat('ab', 16), 'early' => false,
            'worker_id' => 7], 'context');
        $f = $c->ask('obflush');
        same($f['data'], 'xyz', 'the application cannot remove our output buffer');
        $big = str_repeat('0123456789abcdef', 4096);
        $f = $c->ask('echo:' . $big);
        same($f['data'], $big, '64 KiB round trip');
        $c->send(Frame::shutdown());
        same($c->frame(), null, 'end of stream after SHUTDOWN');
        same($c->wait(), 0, 'exit status after SHUTDOWN');
        same($c->stdout, '', 'nothing on stdout');
    } finally {
        $c->kill();
    }
};

$tests['loop: errors, stdout and stderr'] = function (): void {
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $f = $c->ask('throw:secret detail');
        same([$f['type'], $f['data']], [Frame::APP_ERROR, 'application error'], 'generic text');
        $f = $c->ask('array');
        same($f['type'], Frame::APP_ERROR, 'non-string return');
        $f = $c->ask('noisy');
        same([$f['type'], $f['data']], [Frame::RESPONSE, 'noisy-ok'], 'noisy answer');
        $f = $c->ask('echo:still fine');
        same($f['data'], 'still fine', 'the worker goes on after an exception');
        $c->wait(true);
        check(str_contains($c->stderr, "<3>arcangelo: request 1: uncaught RuntimeException: secret detail"),
            'exception logged as an error');
        check(str_contains($c->stderr, "\n<3>Stack trace:\n<3>#0 "), 'trace logged, every line an error');
        check(str_contains($c->stderr, "\nto-stderr\n"), 'stderr passes through untouched');
        check(str_contains($c->stderr, '<4>arcangelo: PHP Warning: careful') && str_contains($c->stderr, '(request 1)'),
            'warning logged as a warning, with the request id');
        same($c->stdout, "to-stdout\n", 'stdout holds only what went to STDOUT');
    } finally {
        $c->kill();
    }
    $c = new Child(APPS . '/testapp.php', ['--expose-errors']);
    try {
        $c->hello();
        $f = $c->ask('throw:shown');
        same($f['data'], 'RuntimeException: shown', 'exposed text');
    } finally {
        $c->kill();
    }
};

$tests['loop: exit() and fatal errors end the worker after answering'] = function (): void {
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $f = $c->ask('exit');
        same([$f['type'], $f['flags'], $f['data']], [Frame::RESPONSE, Frame::ANS_EXITING, 'partial'],
            'exit answers with its output');
        same($c->frame(), null, 'then the stream ends');
        same($c->wait(), 3, 'exit status');
    } finally {
        $c->kill();
    }
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $f = $c->ask('fatal');
        same([$f['type'], $f['flags'], $f['data']],
            [Frame::APP_ERROR, Frame::ANS_EXITING, 'application error'], 'fatal');
        same($c->frame(), null, 'then the stream ends');
        same($c->wait(), 255, 'exit status');
        check(str_contains($c->stderr, '<3>arcangelo: request 1: fatal error ends the worker: Allowed memory size'),
            'fatal logged as an error');
    } finally {
        $c->kill();
    }
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $f = $c->ask('recycle');
        same([$f['type'], $f['flags'], $f['data']], [Frame::RESPONSE, Frame::ANS_EXITING, 'bye'],
            'recycleWorker');
        same($c->wait(), 0, 'exit status');
    } finally {
        $c->kill();
    }
};

$tests['loop: limits and protocol errors'] = function (): void {
    $c = new Child(APPS . '/testapp.php', ['--max-message=100']);
    try {
        $c->hello();
        $f = $c->ask('big:100');
        same(strlen($f['data']), 100, 'exactly max_message');
        $f = $c->ask('big:101');
        same([$f['type'], $f['data']], [Frame::APP_ERROR, 'response too large'], 'over max_message');
        // A request over the limit is a protocol error: the worker quits.
        $c->send(Frame::request('12345678', 1, 1, '::1', 1, str_repeat("\0", 16), true,
            str_repeat('x', 2000)));
        same($c->frame(), null, 'oversize frame closes');
        same($c->wait(), 2, 'exit status');
    } finally {
        $c->kill();
    }
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $c->send("\x09\x00\x00\x00\x00");
        same($c->frame(), null, 'unknown type closes');
        same($c->wait(), 2, 'exit status');
        check(str_contains($c->stderr, 'protocol error'), 'logged');
    } finally {
        $c->kill();
    }
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $c->send(Frame::hello(1, 1)); // wrong direction
        same($c->frame(), null, 'HELLO to a worker closes');
        same($c->wait(), 2, 'exit status');
    } finally {
        $c->kill();
    }
};

$tests['loop: 1 MiB request and response, byte-at-a-time delivery'] = function (): void {
    $c = new Child(APPS . '/testapp.php');
    try {
        $c->hello();
        $big = random_bytes(1 << 20);
        $f = $c->ask('echo:' . substr($big, 5));
        same(md5($f['data']), md5(substr($big, 5)), '1 MiB echo');
        $frame = Frame::request('abcdefgh', 1, 2, '127.0.0.1', 3, str_repeat('s', 16), false, 'echo:slow');
        for ($i = 0; $i < strlen($frame); $i++) {
            $c->send($frame[$i]);
            if ($i % 16 === 0) {
                usleep(200);
            }
        }
        $f = $c->frame();
        same($f['data'], 'slow', 'a frame in pieces');
    } finally {
        $c->kill();
    }
};

$tests['loop: hooks, bad applications'] = function (): void {
    $c = new Child(APPS . '/hooks.php');
    try {
        $c->hello();
        same($c->ask('x')['data'], 'inits=1 served=1', 'on_init ran once');
        same($c->ask('x')['data'], 'inits=1 served=2', 'state persists between requests');
        $c->send(Frame::shutdown());
        same($c->wait(), 0, 'exit status');
        check(str_contains($c->stderr, 'on_stop after 2 requests'), 'on_stop ran');
        check(str_contains($c->stderr, 'discarded 26 bytes of output from start-up'), 'stray output');
        same($c->stdout, '', 'start-up output never reaches stdout');
    } finally {
        $c->kill();
    }
    foreach (['init_throws.php' => 'cannot connect to the database', 'bad_return.php' => 'must return',
              'missing.php' => 'Failed opening'] as $app => $why) {
        $c = new Child(APPS . '/' . $app);
        try {
            same($c->frame(), null, "$app: no HELLO");
            same($c->wait(), 1, "$app: exit status");
            check(str_contains($c->stderr, $why), "$app: reason logged: " . $c->stderr);
        } finally {
            $c->kill();
        }
    }
};

$tests['loop: end of stream between requests'] = function (): void {
    $c = new Child(APPS . '/hooks.php');
    try {
        $c->hello();
        same($c->wait(true), 0, 'EOF is a clean stop');
        check(str_contains($c->stderr, 'on_stop after 0 requests'), 'on_stop on EOF too');
    } finally {
        $c->kill();
    }
};

/* ------------------------------------------------------------------ */

$filter = $argv[1] ?? '';
$passed = $failed = 0;
foreach ($tests as $name => $fn) {
    if ($filter !== '' && !str_contains($name, $filter)) {
        continue;
    }
    $t0 = microtime(true);
    try {
        $fn();
        $passed++;
        printf("ok   %s (%.2fs)\n", $name, microtime(true) - $t0);
    } catch (Throwable $e) {
        $failed++;
        printf("FAIL %s: %s (%s:%d)\n", $name, $e->getMessage(), basename($e->getFile()), $e->getLine());
    }
}
printf("%d passed, %d failed\n", $passed, $failed);
exit($failed === 0 ? 0 : 1);
