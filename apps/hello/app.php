<?php
/*
 * The hello-world application: what MKD serves when nothing else is
 * configured. An application is a PHP file that returns its handler; the
 * API is in docs/WORKER-PROTOCOL.md ("Writing an application").
 */
declare(strict_types=1);

return function (string $body, Megaki\Context $ctx): string {
    return "Hello, world!\n"
        . sprintf("You are %s port %d; this is request %d of session %s%s, %d bytes.\n",
            $ctx->clientAddress, $ctx->clientPort, $ctx->requestId,
            substr($ctx->sessionId, 0, 8), $ctx->early ? ' (early)' : '', strlen($body));
};
