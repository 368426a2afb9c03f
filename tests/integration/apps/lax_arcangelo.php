<?php
/*
 * The real Arcangelo, told a max_message 1000 bytes larger than MKD's: it
 * stands in for a worker that does not hold to MKD's limit (another
 * implementation, or one started before a reload lowered max_message), so
 * that its answers may pass the limit by less than the frame overhead.
 * Run from the source tree (not copied), as `arcangelo = ...`.
 */
declare(strict_types=1);

$argv = array_map(
    fn(string $a): string => str_starts_with($a, '--max-message=')
        ? '--max-message=' . ((int)substr($a, 14) + 1000) : $a,
    $argv
);
require __DIR__ . '/../../../arcangelo/bin/arcangelo.php';
