<?php
// on_init / on_stop hooks: on_init runs once before HELLO, on_stop at SHUTDOWN.
declare(strict_types=1);

$state = new stdClass();
$state->inits = 0;
$state->served = 0;
return [
    'on_init' => function () use ($state) {
        $state->inits++;
        echo "stray output from on_init\n"; // discarded (and logged as such)
    },
    'handle' => function (string $body, Megaki\Context $ctx) use ($state): string {
        $state->served++;
        return "inits={$state->inits} served={$state->served}";
    },
    'on_stop' => function () use ($state) {
        fwrite(STDERR, "on_stop after {$state->served} requests\n");
    },
];
