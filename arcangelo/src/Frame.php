<?php
/*
 * Frame.php -- the worker protocol's frame codec (docs/WORKER-PROTOCOL.md),
 * the PHP twin of mkd/pegasus/ipc.c. Pure functions on strings: no I/O.
 * Both are checked against tests/vectors/worker-ipc.txt.
 *
 *   frame = type u8 | length u32 (big-endian) | body[length]
 */
declare(strict_types=1);

namespace Megaki\Arcangelo;

final class Frame
{
    public const VERSION = 1;

    public const HELLO = 0x01;
    public const REQUEST = 0x02;
    public const RESPONSE = 0x03;
    public const APP_ERROR = 0x04;
    public const SHUTDOWN = 0x05;

    public const HEADER = 5;
    public const HARD_MAX = (256 << 20) + 1024;
    public const OVERHEAD = 1024;
    public const CTX_FIXED = 40;
    public const CTX_MAX = 1024;
    public const ADDR_MAX = 45;
    public const SOFTWARE_MAX = 255;
    public const ERROR_TEXT_MAX = 1024;

    public const REQ_EARLY = 0x01;
    public const ANS_EXITING = 0x01;

    /* decode() results, as in ipc.h */
    public const OK = 0;
    public const NEED_MORE = 1;
    public const E_TOO_LARGE = -1;
    public const E_TYPE = -2;
    public const E_MALFORMED = -3;

    /**
     * Check a 5-byte header. Returns [result, type, length]; result is OK
     * or an error, judged before anyone reads the body.
     */
    public static function header(string $h, int $maxLen = self::HARD_MAX): array
    {
        if (strlen($h) < self::HEADER) {
            return [self::NEED_MORE, 0, 0];
        }
        $type = ord($h[0]);
        $len = unpack('N', $h, 1)[1];
        if ($maxLen <= 0 || $maxLen > self::HARD_MAX) {
            $maxLen = self::HARD_MAX;
        }
        if ($type < self::HELLO || $type > self::SHUTDOWN) {
            return [self::E_TYPE, $type, $len];
        }
        if ($len > $maxLen) {
            return [self::E_TOO_LARGE, $type, $len];
        }
        return [self::OK, $type, $len];
    }

    /**
     * Decode the first frame of $buf. Returns [result, frame|null,
     * consumed]; on NEED_MORE, consumed is the whole frame's size once
     * the header is in (else 0). A frame is an array with 'type' and the
     * fields of its type (see below); 'tag' stays an 8-byte string, since
     * PHP has no unsigned 64-bit integer and a worker only echoes it.
     */
    public static function decode(string $buf, int $maxLen = self::HARD_MAX): array
    {
        [$res, $type, $len] = self::header($buf, $maxLen);
        if ($res !== self::OK) {
            return [$res, null, 0];
        }
        if (strlen($buf) < self::HEADER + $len) {
            return [self::NEED_MORE, null, self::HEADER + $len];
        }
        $body = substr($buf, self::HEADER, $len);
        $f = self::decodeBody($type, $body);
        if ($f === null) {
            return [self::E_MALFORMED, null, 0];
        }
        return [self::OK, $f, self::HEADER + $len];
    }

    /** The body of a frame of a known type, or null if malformed. */
    public static function decodeBody(int $type, string $body): ?array
    {
        $n = strlen($body);
        switch ($type) {
            case self::HELLO:
                if ($n < 8 || $n > 8 + self::SOFTWARE_MAX) {
                    return null;
                }
                $v = unpack('nversion/nflags/Npid', $body);
                if ($v['flags'] !== 0) {
                    return null;
                }
                return ['type' => $type, 'version' => $v['version'],
                        'pid' => $v['pid'], 'software' => substr($body, 8)];
            case self::REQUEST:
                return self::decodeRequest($body);
            case self::RESPONSE:
            case self::APP_ERROR:
                if ($n < 9) {
                    return null;
                }
                $flags = ord($body[8]);
                if (($flags & ~self::ANS_EXITING) !== 0) {
                    return null;
                }
                $data = substr($body, 9);
                if ($type === self::APP_ERROR && strlen($data) > self::ERROR_TEXT_MAX) {
                    return null;
                }
                return ['type' => $type, 'tag' => substr($body, 0, 8),
                        'flags' => $flags, 'data' => $data];
            case self::SHUTDOWN:
                return $n === 0 ? ['type' => $type] : null;
            default:
                return null;
        }
    }

    private static function decodeRequest(string $body): ?array
    {
        $n = strlen($body);
        if ($n < 2) {
            return null;
        }
        $ctxLen = unpack('n', $body)[1];
        if ($ctxLen < self::CTX_FIXED || $ctxLen > self::CTX_MAX || 2 + $ctxLen > $n) {
            return null;
        }
        $c = unpack('Jconn/Nrid/nport/Cflags/Caddrlen', $body, 10);
        $flags = $c['flags'];
        $alen = $c['addrlen'];
        if (($flags & ~self::REQ_EARLY) !== 0 || $alen > self::ADDR_MAX
            || self::CTX_FIXED + $alen > $ctxLen) {
            return null;
        }
        $addr = substr($body, 2 + self::CTX_FIXED, $alen);
        // Printable ASCII without spaces, as the spec says.
        if ($alen > 0 && preg_match('/\A[\x21-\x7e]+\z/', $addr) !== 1) {
            return null;
        }
        // Context bytes beyond the known fields are skipped (spec section 4).
        return [
            'type' => self::REQUEST,
            'tag' => substr($body, 2, 8),
            'conn_id' => $c['conn'],
            'request_id' => $c['rid'],
            'port' => $c['port'],
            'flags' => $flags,
            'early' => ($flags & self::REQ_EARLY) !== 0,
            'session_id' => substr($body, 2 + 24, 16),
            'addr' => $addr,
            'data' => substr($body, 2 + $ctxLen),
        ];
    }

    public static function hello(int $version, int $pid, string $software = ''): string
    {
        if (strlen($software) > self::SOFTWARE_MAX) {
            $software = substr($software, 0, self::SOFTWARE_MAX);
        }
        return self::frame(self::HELLO, pack('nnN', $version, 0, $pid) . $software);
    }

    public static function response(string $tag, int $flags, string $body): string
    {
        self::checkTag($tag);
        return self::frame(self::RESPONSE, $tag . chr($flags & self::ANS_EXITING) . $body);
    }

    /** The text is cut to the protocol's 1024 bytes. */
    public static function appError(string $tag, int $flags, string $text): string
    {
        self::checkTag($tag);
        if (strlen($text) > self::ERROR_TEXT_MAX) {
            $text = substr($text, 0, self::ERROR_TEXT_MAX);
        }
        return self::frame(self::APP_ERROR, $tag . chr($flags & self::ANS_EXITING) . $text);
    }

    public static function shutdown(): string
    {
        return self::frame(self::SHUTDOWN, '');
    }

    /** A REQUEST frame (the daemon's side; for tests and tools). */
    public static function request(string $tag, int $connId, int $requestId, string $addr,
                                   int $port, string $sessionId, bool $early, string $body): string
    {
        self::checkTag($tag);
        if (strlen($addr) > self::ADDR_MAX || strlen($sessionId) !== 16) {
            throw new \InvalidArgumentException('bad address or session id');
        }
        $ctx = $tag . pack('JNnCC', $connId, $requestId, $port, $early ? self::REQ_EARLY : 0, strlen($addr))
            . $sessionId . $addr;
        return self::frame(self::REQUEST, pack('n', strlen($ctx)) . $ctx . $body);
    }

    private static function frame(int $type, string $body): string
    {
        if (strlen($body) > self::HARD_MAX) {
            throw new \LengthException('frame over the hard maximum');
        }
        return chr($type) . pack('N', strlen($body)) . $body;
    }

    private static function checkTag(string $tag): void
    {
        if (strlen($tag) !== 8) {
            throw new \InvalidArgumentException('a tag is 8 bytes');
        }
    }
}
