<?php
/*
 * A misbehaving worker for Pegasus' tests: it stands in for arcangelo.php
 * (same command line) and breaks the protocol as FAKE_MODE says:
 *   badtag    answers with the wrong tag
 *   oversize  announces a response over max_message
 *   garbage   sends an unknown frame type
 *   version2  says HELLO with protocol version 2
 *   silent    never says HELLO
 *   double    answers every request twice
 *   overmax   "over:N" answers max_message + N bytes (--max-message), a
 *             body that still fits the frame limit; anything else "ok"
 *   preanswer answers "ok", then, before it is sent, the next request
 *             as well ("forged", for the tag that follows), in a write of
 *             its own a moment later
 *   prefix    answers "first", then starts its next answer before the next
 *             request is sent, and finishes it ("forged") with that
 *             request's tag once it has it
 *   early     answers "early" as soon as it has a request's tag, before it
 *             has read the body
 */
declare(strict_types=1);

require __DIR__ . '/../../src/Frame.php';
require __DIR__ . '/../../src/Channel.php';

use Megaki\Arcangelo\Channel;
use Megaki\Arcangelo\Frame;

$mode = getenv('FAKE_MODE') ?: 'badtag';
$max = 1 << 20;
foreach ($argv as $a) {
    if (str_starts_with($a, '--max-message=')) {
        $max = (int)substr($a, 14);
    }
}
$ch = Channel::open(3, Frame::HARD_MAX);
if ($mode === 'silent') {
    sleep(30);
    exit(0);
}
$ch->write(Frame::hello($mode === 'version2' ? 2 : 1, getmypid(), 'fake'));
if ($mode === 'early') {
    answerEarly();
}
$next = 'first';
while (($f = $ch->read()) !== null) {
    if ($f['type'] !== Frame::REQUEST) {
        break;
    }
    switch ($mode) {
        case 'badtag':
            $ch->write(Frame::response('XXXXXXXX', 0, 'wrong'));
            break;
        case 'oversize':
            $ch->write("\x03\x7f\xff\xff\xff");
            break;
        case 'garbage':
            $ch->write("\x99\x00\x00\x00\x00");
            break;
        case 'double':
            $ch->write(Frame::response($f['tag'], 0, 'first') . Frame::response($f['tag'], 0, 'second'));
            break;
        case 'overmax':
            $over = str_starts_with($f['data'], 'over:') ? (int)substr($f['data'], 5) : null;
            $ch->write(Frame::response($f['tag'], 0, $over === null ? 'ok' : str_repeat('o', $max + $over)));
            break;
        case 'preanswer':
            $tag = pack('J', unpack('J', $f['tag'])[1] + 1);
            $ch->write(Frame::response($f['tag'], 0, 'ok'));
            usleep(20000);
            $ch->write(Frame::response($tag, 0, 'forged'));
            break;
        case 'prefix':
            // The 5-byte header of a RESPONSE carrying "forged", sent with
            // this answer; its tag comes with the next request.
            $ch->write(substr(Frame::response($f['tag'], 0, $next), $next === 'first' ? 0 : 5)
                . substr(Frame::response($f['tag'], 0, 'forged'), 0, 5));
            $next = 'forged';
            break;
        default:
            $ch->write(Frame::response($f['tag'], 0, 'ok'));
    }
}
sleep(30); // wait to be killed

/* Requests read field by field off fd 3: the answer goes out once the tag
 * is in, before the body is read (the body is read afterwards). */
function answerEarly(): never
{
    $s = fopen('php://fd/3', 'r+b');
    stream_set_read_buffer($s, 0);
    while (($h = readExactly($s, 5)) !== null) {
        $len = unpack('N', $h, 1)[1];
        $tag = substr(readExactly($s, 10), 2, 8);
        fwrite($s, Frame::response($tag, 0, 'early'));
        fflush($s);
        readExactly($s, $len - 10);
    }
    exit(0);
}

function readExactly($s, int $n): ?string
{
    $buf = '';
    while (strlen($buf) < $n) {
        $chunk = fread($s, $n - strlen($buf));
        if ($chunk === false || $chunk === '') {
            if (feof($s)) {
                return null;
            }
            continue;
        }
        $buf .= $chunk;
    }
    return $buf;
}
