<?php
// An application whose start-up always fails (crash-loop tests).
declare(strict_types=1);

return [
    'on_init' => function () {
        throw new RuntimeException('cannot connect to the database');
    },
    'handle' => fn (string $body) => 'never',
];
