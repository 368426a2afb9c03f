<?php
/*
 * Channel.php -- frames over the worker's protocol file descriptor.
 *
 * Reads loop until a whole frame is in: a pipe or socket hands out what it
 * has, not what was asked for (the original Arcangelo did one fread per
 * field and desynchronised on large requests). The header is judged before
 * the body is read, so a bad length costs five bytes, not a big buffer.
 */
declare(strict_types=1);

namespace Megaki\Arcangelo;

final class ProtocolError extends \RuntimeException
{
}

final class Channel
{
    /** @var resource */
    private $stream;
    private int $maxLen;

    /** @param resource $stream */
    public function __construct($stream, int $maxLen)
    {
        $this->stream = $stream;
        $this->maxLen = $maxLen;
    }

    /** Open the protocol descriptor (fd 3 by default). */
    public static function open(int $fd, int $maxLen): self
    {
        $s = @fopen('php://fd/' . $fd, 'r+b');
        if ($s === false) {
            throw new ProtocolError("cannot open file descriptor $fd");
        }
        return new self($s, $maxLen);
    }

    /**
     * The next frame, or null on a clean end of stream (between frames).
     * Throws ProtocolError on a bad frame or an end mid-frame.
     */
    public function read(): ?array
    {
        $h = $this->readExactly(Frame::HEADER, true);
        if ($h === null) {
            return null;
        }
        [$res, $type, $len] = Frame::header($h, $this->maxLen);
        if ($res !== Frame::OK) {
            throw new ProtocolError(sprintf('bad frame header (type %d, length %d, result %d)',
                $type, $len, $res));
        }
        $body = $len > 0 ? $this->readExactly($len, false) : '';
        $f = Frame::decodeBody($type, (string)$body);
        if ($f === null) {
            throw new ProtocolError(sprintf('malformed frame of type %d', $type));
        }
        return $f;
    }

    public function write(string $bytes): void
    {
        $off = 0;
        $n = strlen($bytes);
        while ($off < $n) {
            $w = @fwrite($this->stream, $off === 0 ? $bytes : substr($bytes, $off));
            if ($w === false || $w === 0) {
                if ($w === 0 && !feof($this->stream) && $this->wait(false)) {
                    continue;
                }
                throw new ProtocolError('cannot write to the daemon');
            }
            $off += $w;
        }
        @fflush($this->stream);
    }

    private function readExactly(int $n, bool $eofOk): ?string
    {
        $buf = '';
        while (strlen($buf) < $n) {
            $chunk = @fread($this->stream, min($n - strlen($buf), 1 << 20));
            if ($chunk === false || $chunk === '') {
                if (feof($this->stream)) {
                    if ($eofOk && $buf === '') {
                        return null;
                    }
                    throw new ProtocolError('end of stream inside a frame');
                }
                // Nothing yet (a non-blocking descriptor): wait for data.
                $this->wait(true);
                continue;
            }
            $buf .= $chunk;
        }
        return $buf;
    }

    private function wait(bool $forRead): bool
    {
        $r = $forRead ? [$this->stream] : null;
        $w = $forRead ? null : [$this->stream];
        $e = null;
        return @stream_select($r, $w, $e, 1) !== false;
    }
}
