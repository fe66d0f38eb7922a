/**
 * Decoding the timestamp strip the test host stamps on every frame, for latency
 * measurements that need no clock but the shared one.
 *
 * The strip is the frame's top {@link STRIP_ROWS} rows, cut into {@link STRIP_BLOCKS}
 * equal-width blocks, black = 0 and white = 1, most significant bit first:
 * bits 0–47 are the wall-clock time in ms since the Unix epoch when the frame was rendered,
 * bits 48–63 the frame counter modulo 65536. Pure: takes pixels, returns numbers.
 *
 * @module timestamp-strip
 */

/** Height of the strip in source frame rows. */
export const STRIP_ROWS = 16;
/** Number of blocks (bits) across the frame. */
export const STRIP_BLOCKS = 64;
/** The row to sample: the strip's middle, farthest from the blur at its lower edge. */
export const SAMPLE_ROW = 8;

const TIME_BITS = 48;
const LUMA_THRESHOLD = 128;
/** Narrower blocks have no pixel that lies wholly inside one block. */
const MIN_PIXELS_PER_BLOCK = 2;

/**
 * Decodes one row of the strip.
 *
 * Samples the middle pixel of each block, which stays clean even when the video was scaled
 * or blurred by the encoder across block edges.
 *
 * @param {Uint8ClampedArray | Uint8Array | number[]} rgba - RGBA pixels of one row, at least
 *   `width * 4` values (`ImageData.data` of a one-row read)
 * @param {number} width - pixels in the row; the strip spans all of them
 * @returns {{renderedMs: number, frame: number} | null} null when the row is too narrow
 *   (under two pixels a block) to decode
 */
export default function decodeTimestampStrip(rgba, width) {
    if (!Number.isInteger(width) || width < STRIP_BLOCKS * MIN_PIXELS_PER_BLOCK
        || rgba.length < width * 4) {
        return null;
    }
    let renderedMs = 0;
    let frame = 0;
    for (let bit = 0; bit < STRIP_BLOCKS; bit += 1) {
        const x = Math.floor(((bit + 0.5) * width) / STRIP_BLOCKS);
        const i = x * 4;
        // BT.601 luma: the strip is grey-scale, but encoders shift chroma a little.
        const luma = 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
        const one = luma >= LUMA_THRESHOLD ? 1 : 0;
        // Multiplication, not shifts: JavaScript's bit operators stop at 32 bits.
        if (bit < TIME_BITS) {
            renderedMs = renderedMs * 2 + one;
        }
        else {
            frame = frame * 2 + one;
        }
    }
    return { renderedMs, frame };
}
