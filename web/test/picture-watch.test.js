import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NO_PICTURE_MS, pictureGone } from '../js/picture-watch.js';

test('the picture is gone after two seconds without a frame, counted from the last one', () => {
    assert.equal(NO_PICTURE_MS, 2000);
    assert.deepEqual(pictureGone(1000, 0, 2999), { gone: false, forMs: 1999 });
    assert.deepEqual(pictureGone(1000, 0, 3000), { gone: true, forMs: 2000 });
    // Never a frame: counted from when watching began.
    assert.deepEqual(pictureGone(null, 500, 2000), { gone: false, forMs: 1500 });
    assert.deepEqual(pictureGone(null, 500, 4600), { gone: true, forMs: 4100 });
});
