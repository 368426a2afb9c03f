<?php
/*
 * The test application of Arcangelo's and Pegasus' tests. The request body
 * is a command, "name" or "name:argument":
 *   echo:X      answers X           ctx        the context as JSON
 *   slowecho:X  answers X after 2 ms
 *   mixed       echoes "a", returns "b"
 *   throw:MSG   throws RuntimeException(MSG)
 *   exit        echoes "partial", then exit(3)
 *   fatal       runs out of memory (a fatal error)
 *   sleep:MS    sleeps, answers "slept"
 *   noisy       writes to STDOUT and STDERR, warns, answers "noisy-ok"
 *   leak:MIB    keeps MIB more MiB for the worker's lifetime
 *   pid         answers the worker's pid
 *   pidsleep:MS sleeps, then answers the worker's pid
 *   big:N       answers N bytes
 *   recycle     asks for a fresh worker, answers "bye"
 *   obflush     tries to get around output buffering
 *   selfkill    SIGKILLs its own process (a crash, no shutdown code runs)
 *   array       returns an array (a type error)
 */
declare(strict_types=1);

return function (string $body, Megaki\Context $ctx) {
    static $keep = [];
    $i = strpos($body, ':');
    $cmd = $i === false ? $body : substr($body, 0, $i);
    $arg = $i === false ? '' : substr($body, $i + 1);
    switch ($cmd) {
        case 'echo':
            return $arg;
        case 'slowecho':
            usleep(2000);
            return $arg;
        case 'ctx':
            return json_encode($ctx->toArray());
        case 'mixed':
            echo 'a';
            return 'b';
        case 'throw':
            throw new RuntimeException($arg);
        case 'exit':
            echo 'partial';
            exit(3);
        case 'fatal':
            ini_set('memory_limit', '32M');
            $a = [];
            while (true) {
                $a[] = str_repeat('x', 1 << 20);
            }
        case 'sleep':
            usleep((int)$arg * 1000);
            return 'slept';
        case 'noisy':
            fwrite(STDOUT, "to-stdout\n");
            fwrite(STDERR, "to-stderr\n");
            trigger_error('careful', E_USER_WARNING);
            echo 'noisy-';
            return 'ok';
        case 'leak':
            $keep[] = str_repeat(chr(65 + count($keep) % 26), ((int)$arg) << 20);
            return 'kept ' . count($keep);
        case 'pid':
            return (string)getmypid();
        case 'pidsleep':
            usleep((int)$arg * 1000);
            return (string)getmypid();
        case 'big':
            return str_repeat('b', (int)$arg);
        case 'recycle':
            $ctx->recycleWorker();
            return 'bye';
        case 'obflush':
            echo 'x';
            @ob_end_flush();
            @ob_end_clean();
            echo 'y';
            return 'z';
        case 'selfkill':
            posix_kill(getmypid(), 9);
            sleep(5);
            return 'unreachable';
        case 'array':
            return ['not', 'a', 'string'];
        default:
            return "unknown command $cmd";
    }
};
