<?php
/*
 * Worker.php -- Arcangelo's loop: load the application once, say HELLO,
 * then read a request, run the handler, write its answer, until SHUTDOWN
 * or the end of the channel.
 *
 * What the application may do, and what happens:
 *   returns a string / echoes      RESPONSE (echo first, then the string)
 *   throws                         APP_ERROR; the trace goes to stderr; the
 *                                  client gets "application error" (or the
 *                                  message, with --expose-errors)
 *   calls exit()                   RESPONSE with what it echoed, flagged
 *                                  "exiting"; the worker ends (as PHP-FPM
 *                                  would send the output, we do)
 *   fatal error (memory, ...)      APP_ERROR flagged "exiting", from the
 *                                  shutdown function; the worker ends
 *   writes to STDOUT/STDERR        goes to MKD's log, never to the protocol
 *   is killed, segfaults, hangs    Pegasus answers for it
 *   changes a php_admin_value      restored after the request, and logged
 *   (ini_set)                      (--ini-admin): the next request starts
 *                                  with the operator's value again
 */
declare(strict_types=1);

namespace Megaki\Arcangelo;

use Megaki\Context;

final class Worker
{
    public const SOFTWARE = 'arcangelo/1.0';

    private const FATAL = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR
        | E_USER_ERROR | E_RECOVERABLE_ERROR;

    /**
     * Severities of what we write to stderr, as syslog priorities: each
     * line starts with "<N>" and MKD logs it at that level
     * (docs/WORKER-PROTOCOL.md section 1).
     */
    public const ERR = 3;
    public const WARNING = 4;
    public const INFO = 6;

    private Channel $ch;
    private int $maxMessage;
    private int $workerId;
    private bool $expose;
    private string $appPath;

    /** @var callable */
    private $handle;
    /** @var callable|null */
    private $onStop = null;

    /** Output captured from the handler (see capture()). */
    private string $out = '';
    /** The request being handled: [tag, Context]; null between requests. */
    private ?array $current = null;
    private int $baseLevel = 0;

    /** php.ini directives the operator set (--ini, --ini-admin). */
    private array $iniNames;
    /** The operator's php_admin_value settings: name => value, as PHP
     *  holds them at start-up (--ini-admin). */
    private array $admin = [];

    public function __construct(Channel $ch, string $appPath, int $maxMessage,
                                int $workerId = 0, bool $expose = false,
                                array $iniNames = [], array $adminNames = [])
    {
        $this->ch = $ch;
        $this->appPath = $appPath;
        $this->maxMessage = $maxMessage;
        $this->workerId = $workerId;
        $this->expose = $expose;
        $this->iniNames = $iniNames;
        $this->admin = array_fill_keys($adminNames, '');
    }

    /** Parse argv, run, and return the exit status. */
    public static function main(array $argv): int
    {
        $maxMessage = 1 << 20;
        $worker = 0;
        $expose = false;
        $fd = 3;
        $ini = [];
        $admin = [];
        $app = null;
        $args = array_slice($argv, 1);
        while ($args !== []) {
            $a = array_shift($args);
            if ($a === '--') {
                $app = array_shift($args);
                break;
            } elseif (str_starts_with($a, '--max-message=')) {
                $maxMessage = (int)substr($a, 14);
            } elseif (str_starts_with($a, '--worker=')) {
                $worker = (int)substr($a, 9);
            } elseif (str_starts_with($a, '--fd=')) {
                $fd = (int)substr($a, 5);
            } elseif ($a === '--expose-errors') {
                $expose = true;
            } elseif (str_starts_with($a, '--ini=')) {
                $ini = self::names(substr($a, 6));
            } elseif (str_starts_with($a, '--ini-admin=')) {
                $admin = self::names(substr($a, 12));
            } elseif ($a !== '' && $a[0] !== '-') {
                $app = $a;
                break;
            } else {
                self::log("unknown option $a", self::ERR);
                return 64;
            }
        }
        if ($app === null || $args !== [] || $maxMessage < 1 || $maxMessage > (256 << 20)) {
            self::log('usage: arcangelo.php [--max-message=N] [--worker=N] [--fd=N] '
                . '[--expose-errors] [--ini=NAME,...] [--ini-admin=NAME,...] [--] APP.php', self::ERR);
            return 64;
        }
        try {
            $ch = Channel::open($fd, $maxMessage + Frame::OVERHEAD);
        } catch (ProtocolError $e) {
            self::log($e->getMessage() . ' (Arcangelo runs under MKD, which gives it fd 3)', self::ERR);
            return 70;
        }
        return (new self($ch, $app, $maxMessage, $worker, $expose, $ini, $admin))->run();
    }

    /** "a,b,c": the names, none empty. */
    private static function names(string $list): array
    {
        return array_values(array_filter(explode(',', $list), fn(string $n): bool => $n !== ''));
    }

    public function run(): int
    {
        // Errors are logged to stderr (MKD's log), never displayed: a
        // displayed warning would land in the response body.
        ini_set('display_errors', '0');
        ini_set('log_errors', '1');
        ini_set('html_errors', '0');
        ini_set('error_log', '');
        set_error_handler([$this, 'onError']);
        register_shutdown_function([$this, 'onShutdown']);
        // Our buffer cannot be removed by the application (no REMOVABLE
        // flag): ob_end_flush() at the top level fails instead of sending
        // the response to stdout.
        ob_start([$this, 'capture'], 0, PHP_OUTPUT_HANDLER_CLEANABLE | PHP_OUTPUT_HANDLER_FLUSHABLE);
        $this->baseLevel = ob_get_level();

        if (!$this->iniKnown() || !$this->load()) {
            return 1;
        }
        if (!$this->holdAdminValues('while the application started')) {
            return 3;
        }
        $stray = $this->takeOutput();
        if ($stray !== '') {
            self::log(sprintf('discarded %d bytes of output from start-up', strlen($stray)),
                self::WARNING);
        }
        try {
            $this->ch->write(Frame::hello(Frame::VERSION, getmypid(),
                self::SOFTWARE . ' php/' . PHP_VERSION));
            while (($f = $this->ch->read()) !== null) {
                if ($f['type'] === Frame::SHUTDOWN) {
                    break;
                }
                if ($f['type'] !== Frame::REQUEST) {
                    throw new ProtocolError('unexpected frame type ' . $f['type']);
                }
                $this->serve($f);
            }
        } catch (ProtocolError $e) {
            self::log('protocol error: ' . $e->getMessage(), self::ERR);
            return 2;
        }
        $this->stop();
        return 0;
    }

    /** Load the application and run its on_init. */
    private function load(): bool
    {
        try {
            // An isolated scope: the application sees none of our variables.
            $app = (static function (string $__file) {
                return require $__file;
            })($this->appPath);
            if (is_callable($app)) {
                $this->handle = $app;
            } elseif (is_array($app) && isset($app['handle']) && is_callable($app['handle'])) {
                $this->handle = $app['handle'];
                if (isset($app['on_init'])) {
                    if (!is_callable($app['on_init'])) {
                        throw new \TypeError('on_init is not callable');
                    }
                    ($app['on_init'])();
                }
                if (isset($app['on_stop'])) {
                    if (!is_callable($app['on_stop'])) {
                        throw new \TypeError('on_stop is not callable');
                    }
                    $this->onStop = $app['on_stop'];
                }
            } else {
                self::log("{$this->appPath} must return a callable or ['handle' => callable, "
                    . "'on_init' => callable, 'on_stop' => callable]", self::ERR);
                return false;
            }
        } catch (\Throwable $e) {
            self::log('cannot start the application: ' . self::describe($e), self::ERR);
            return false;
        }
        return true;
    }

    private function serve(array $f): void
    {
        $ctx = new Context(
            $f['request_id'],
            $f['conn_id'],
            $f['addr'],
            $f['port'],
            bin2hex($f['session_id']),
            $f['early'],
            $this->workerId,
        );
        $tag = $f['tag'];
        $this->current = [$tag, $ctx];
        $this->out = '';
        try {
            $ret = ($this->handle)($f['data'], $ctx);
            if ($ret !== null && !is_scalar($ret) && !$ret instanceof \Stringable) {
                throw new \TypeError('the handler returned ' . get_debug_type($ret)
                    . ', not a string');
            }
            $body = $this->takeOutput() . ($ret === null || $ret === false ? '' : (string)$ret);
            $flags = $ctx->recycleRequested() ? Frame::ANS_EXITING : 0;
            if (strlen($body) > $this->maxMessage) {
                self::log(sprintf('request %d: response of %d bytes is over max_message (%d)',
                    $ctx->requestId, strlen($body), $this->maxMessage), self::ERR);
                $frame = Frame::appError($tag, $flags, 'response too large');
            } else {
                $frame = Frame::response($tag, $flags, $body);
            }
            unset($body);
        } catch (\Throwable $e) {
            $this->discardOutput();
            self::log("request {$ctx->requestId}: uncaught " . self::describe($e), self::ERR);
            $flags = $ctx->recycleRequested() ? Frame::ANS_EXITING : 0;
            $frame = Frame::appError($tag, $flags, $this->clientText($e));
        }
        $this->current = null;
        $this->ch->write($frame);
        if ($ctx->recycleRequested()) {
            $this->stop();
            exit(0);
        }
        if (!$this->holdAdminValues("in request {$ctx->requestId}")) {
            $this->stop();
            exit(3);
        }
    }

    /**
     * Every directive the operator set exists in this PHP (a misspelt or
     * an extension's that is not loaded would be ignored by PHP without a
     * word), and the admin values are noted as PHP holds them.
     */
    private function iniKnown(): bool
    {
        foreach (array_merge($this->iniNames, array_keys($this->admin)) as $name) {
            if (ini_get($name) === false) {
                self::log("php.ini setting $name: PHP has no such directive "
                    . '(misspelt, or its extension is not loaded)', self::ERR);
                return false;
            }
        }
        foreach (array_keys($this->admin) as $name) {
            $this->admin[$name] = ini_get($name);
        }
        return true;
    }

    /**
     * The PHP CLI cannot lock a setting against ini_set as PHP-FPM does
     * with php_admin_value: put back what the application changed, between
     * requests, and say so (names only: a value may hold a password).
     * False when one cannot be put back: the worker must end.
     */
    private function holdAdminValues(string $when): bool
    {
        foreach ($this->admin as $name => $value) {
            if (ini_get($name) === $value) {
                continue;
            }
            if (@ini_set($name, $value) === false || ini_get($name) !== $value) {
                self::log("php_admin_value $name was changed $when and cannot be "
                    . 'put back: the worker ends', self::ERR);
                return false;
            }
            self::log("php_admin_value $name was changed $when; put back", self::WARNING);
        }
        return true;
    }

    private function stop(): void
    {
        if ($this->onStop === null) {
            return;
        }
        $stop = $this->onStop;
        $this->onStop = null;
        try {
            $stop();
        } catch (\Throwable $e) {
            self::log('on_stop: ' . self::describe($e), self::ERR);
        }
        $this->discardOutput();
    }

    /** ob_start handler: keep everything, pass nothing on to stdout. */
    public function capture(string $buffer, int $phase): string
    {
        $this->out .= $buffer;
        return '';
    }

    private function takeOutput(): string
    {
        while (ob_get_level() > $this->baseLevel) {
            if (!@ob_end_flush()) {
                break; // an application buffer that refuses to go
            }
        }
        if (ob_get_level() >= 1) {
            @ob_flush();
        }
        $out = $this->out;
        $this->out = '';
        return $out;
    }

    private function discardOutput(): void
    {
        while (ob_get_level() > $this->baseLevel) {
            if (!@ob_end_clean()) {
                break;
            }
        }
        if (ob_get_level() >= 1) {
            @ob_clean();
        }
        $this->out = '';
    }

    private function clientText(\Throwable $e): string
    {
        if (!$this->expose) {
            return 'application error';
        }
        return get_class($e) . ': ' . $e->getMessage();
    }

    /** Warnings and notices go to stderr with the request id. */
    public function onError(int $no, string $msg, string $file, int $line): bool
    {
        if (!(error_reporting() & $no)) {
            return false; // silenced with @
        }
        if ($no & (E_USER_ERROR | E_RECOVERABLE_ERROR)) {
            return false; // fatal: PHP ends the script, onShutdown answers
        }
        $where = $this->current !== null ? " (request {$this->current[1]->requestId})" : '';
        self::log(sprintf('PHP %s: %s in %s:%d%s', self::errorName($no), $msg, $file, $line, $where),
            self::WARNING);
        return true;
    }

    /**
     * The process is ending. Between requests there is nothing to do. In a
     * request, exit() or a fatal error got us here: answer for it, flagged
     * "exiting" so that Pegasus sends this worker nothing more.
     */
    public function onShutdown(): void
    {
        $err = error_get_last(); // before anything below can replace it
        if ($this->current === null) {
            return;
        }
        [$tag, $ctx] = $this->current;
        $this->current = null;
        try {
            if ($err !== null && ($err['type'] & self::FATAL) !== 0) {
                self::log("request {$ctx->requestId}: fatal error ends the worker: "
                    . "{$err['message']} in {$err['file']}:{$err['line']}", self::ERR);
                $text = $this->expose ? 'fatal error: ' . $err['message'] : 'application error';
                $this->ch->write(Frame::appError($tag, Frame::ANS_EXITING, $text));
            } else {
                $body = $this->takeOutput();
                self::log("request {$ctx->requestId}: exit() ends the worker", self::INFO);
                if (strlen($body) > $this->maxMessage) {
                    $this->ch->write(Frame::appError($tag, Frame::ANS_EXITING, 'response too large'));
                } else {
                    $this->ch->write(Frame::response($tag, Frame::ANS_EXITING, $body));
                }
            }
        } catch (\Throwable $e) {
            self::log('cannot answer from shutdown: ' . $e->getMessage(), self::ERR);
        }
    }

    private static function describe(\Throwable $e): string
    {
        $s = get_class($e) . ': ' . $e->getMessage() . ' in ' . $e->getFile() . ':' . $e->getLine()
            . "\nStack trace:\n" . $e->getTraceAsString();
        for ($p = $e->getPrevious(); $p !== null; $p = $p->getPrevious()) {
            $s .= "\nCaused by " . get_class($p) . ': ' . $p->getMessage() . ' in '
                . $p->getFile() . ':' . $p->getLine();
        }
        return $s;
    }

    private static function errorName(int $no): string
    {
        return match ($no) {
            E_WARNING, E_USER_WARNING, E_CORE_WARNING, E_COMPILE_WARNING => 'Warning',
            E_NOTICE, E_USER_NOTICE => 'Notice',
            E_DEPRECATED, E_USER_DEPRECATED => 'Deprecated',
            E_STRICT => 'Strict Standards',
            default => 'Error',
        };
    }

    /** What log() writes for $msg: every line tagged with its priority. */
    public static function tagged(string $msg, int $priority): string
    {
        $out = '';
        foreach (explode("\n", 'arcangelo: ' . $msg) as $line) {
            $out .= '<' . $priority . '>' . $line . "\n";
        }
        return $out;
    }

    public static function log(string $msg, int $priority): void
    {
        // One write per message: lines of concurrent workers do not mix.
        @fwrite(STDERR, self::tagged($msg, $priority));
    }
}
