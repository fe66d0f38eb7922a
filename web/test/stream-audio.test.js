import assert from 'node:assert/strict';
import { test } from 'node:test';

import StreamAudio, { addAudioTrack, autoplayPolicy, soundButtonHidden } from '../js/stream-audio.js';

/** A video element as far as StreamAudio uses it: `muted`, `play()`, `volumechange`. */
class FakeVideo extends EventTarget {
    #muted = true;
    plays = [];

    /** @param {(muted: boolean) => boolean} allow - whether play() is allowed when muted is… */
    constructor(allow = () => true) {
        super();
        this.allow = allow;
    }

    get muted() {
        return this.#muted;
    }

    set muted(value) {
        this.#muted = value;
        this.dispatchEvent(new Event('volumechange'));
    }

    play() {
        this.plays.push(this.#muted);
        if (this.allow(this.#muted)) {
            return Promise.resolve();
        }
        const err = new Error('play() failed because the user did not interact');
        err.name = 'NotAllowedError';
        return Promise.reject(err);
    }
}

class FakeButton extends EventTarget {
    hidden = false;

    click() {
        this.dispatchEvent(new Event('click'));
    }
}

const track = (kind = 'audio') => Object.assign(new EventTarget(), { kind, readyState: 'live' });

class FakeStream {
    constructor(tracks) {
        this.tracks = [...tracks];
    }

    getTracks() {
        return this.tracks;
    }

    addTrack(t) {
        this.tracks.push(t);
    }
}

const noPolicy = { navigator: {} };

test('the button shows only for a stream with sound that plays muted', () => {
    assert.equal(soundButtonHidden({ hasAudio: false, muted: true }), true);
    assert.equal(soundButtonHidden({ hasAudio: false, muted: false }), true);
    assert.equal(soundButtonHidden({ hasAudio: true, muted: false }), true);
    assert.equal(soundButtonHidden({ hasAudio: true, muted: true }), false);
});

test('the audio track joins the video stream once', () => {
    const audio = track();
    const stream = new FakeStream([track('video')]);
    assert.equal(addAudioTrack(stream, audio), true);
    assert.equal(addAudioTrack(stream, audio), false, 'already there');
    assert.equal(stream.getTracks().length, 2);
    assert.equal(addAudioTrack(null, audio), false);
    assert.equal(addAudioTrack(stream, null), false);
});

test('the autoplay policy is asked where the browser can say, null elsewhere', () => {
    assert.equal(autoplayPolicy({}, { getAutoplayPolicy: () => 'allowed-muted' }), 'allowed-muted');
    assert.equal(autoplayPolicy({}, {}), null);
    assert.equal(autoplayPolicy({}, { getAutoplayPolicy: () => { throw new TypeError('no'); } }), null);
    assert.equal(autoplayPolicy({}, undefined), null);
});

test('without sound there is never a button', async () => {
    const video = new FakeVideo();
    const button = new FakeButton();
    const audio = new StreamAudio(video, button, noPolicy);
    assert.equal(button.hidden, true);
    audio.attach(new FakeStream([track('video')]));
    assert.equal(await audio.tryUnmute(), false);
    assert.equal(video.muted, true, 'nothing to unmute');
    assert.equal(button.hidden, true);
});

test('where the browser allows sound, the stream plays unmuted and shows no button', async () => {
    const video = new FakeVideo(() => true);
    const button = new FakeButton();
    const audio = new StreamAudio(video, button, noPolicy);
    const stream = new FakeStream([track('video')]);
    audio.attach(stream);
    const sound = track();
    audio.setTrack(sound);
    await new Promise((resolve) => { setImmediate(resolve); });
    assert.ok(stream.getTracks().includes(sound), 'the sound plays in the video stream');
    assert.equal(video.muted, false);
    assert.equal(button.hidden, true);
});

test('where the browser refuses, the video plays on muted and the button turns the sound on', async () => {
    // Playing muted is allowed, with sound only after a click.
    let clicked = false;
    const video = new FakeVideo((muted) => muted || clicked);
    const button = new FakeButton();
    const changes = [];
    const audio = new StreamAudio(video, button, noPolicy);
    audio.addEventListener('change', (e) => changes.push(e.detail));
    audio.setTrack(track());
    audio.attach(new FakeStream([track('video')]));
    assert.equal(await audio.tryUnmute(), false);
    assert.equal(video.muted, true, 'back to muted, which plays');
    assert.deepEqual(video.plays, [false, true], 'tried with sound, then played muted');
    assert.equal(button.hidden, false, 'Sound on is offered');
    // Not tried again without a click.
    assert.equal(await audio.tryUnmute(), false);
    assert.equal(video.plays.length, 2);
    clicked = true;
    button.click();
    assert.equal(video.muted, false);
    assert.equal(button.hidden, true);
    assert.deepEqual(changes.at(-1), { hasAudio: true, muted: false });
});

test('a browser that says sound is not allowed is not tried', async () => {
    const video = new FakeVideo();
    const button = new FakeButton();
    const audio = new StreamAudio(video, button, { navigator: { getAutoplayPolicy: () => 'allowed-muted' } });
    audio.attach(new FakeStream([]));
    audio.setTrack(track());
    assert.equal(await audio.tryUnmute(), false);
    assert.deepEqual(video.plays, []);
    assert.equal(button.hidden, false);
});

test('an ended session takes the button away, and close stops listening', () => {
    const video = new FakeVideo();
    const button = new FakeButton();
    const audio = new StreamAudio(video, button, noPolicy);
    const sound = track();
    audio.setTrack(sound);
    assert.equal(button.hidden, false);
    sound.readyState = 'ended';
    sound.dispatchEvent(new Event('ended'));
    assert.equal(button.hidden, true, 'an ended track is no sound');
    audio.setTrack(track());
    audio.reset();
    assert.equal(button.hidden, true);
    audio.close();
    button.click();
    assert.equal(video.muted, true, 'a closed StreamAudio ignores the button');
});
