<?php
/*
 * What a worker was given. The body is one command:
 *   env:NAME        the variable's value, or "(unset)"
 *   ini:NAME        the php.ini directive's value
 *   set:NAME=VALUE  ini_set, then the value PHP holds now
 * Start-up tries to change precision, as an application might; a
 * php_admin_value must win over it.
 */
declare(strict_types=1);

ini_set('precision', '3');

return function (string $body, Megaki\Context $ctx): string {
    [$cmd, $arg] = explode(':', $body, 2) + [1 => ''];
    if ($cmd === 'env') {
        $v = getenv($arg);
        return $v === false ? '(unset)' : $v;
    }
    if ($cmd === 'ini') {
        return (string)ini_get($arg);
    }
    if ($cmd === 'set') {
        [$name, $value] = explode('=', $arg, 2);
        ini_set($name, $value);
        return (string)ini_get($name);
    }
    return 'unknown command';
};
