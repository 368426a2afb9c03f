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
        default:
            $ch->write(Frame::response($f['tag'], 0, 'ok'));
    }
}
sleep(30); // wait to be killed
