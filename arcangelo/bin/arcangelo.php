<?php
/*
 * arcangelo.php -- the PHP shell each Pegasus worker runs:
 *
 *   php arcangelo.php [--max-message=N] [--worker=N] [--fd=N]
 *                     [--expose-errors] [--] APP.php
 *
 * It speaks the worker protocol (docs/WORKER-PROTOCOL.md) on fd 3, loads
 * APP.php once and serves requests with it until told to stop. MKD starts
 * it; run by hand it has no fd 3 and says so.
 */
declare(strict_types=1);

require __DIR__ . '/../src/Frame.php';
require __DIR__ . '/../src/Channel.php';
require __DIR__ . '/../src/Context.php';
require __DIR__ . '/../src/Worker.php';

exit(\Megaki\Arcangelo\Worker::main($argv));
