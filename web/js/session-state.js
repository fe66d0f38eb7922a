/**
 * The life cycle of a viewer session, and which steps are allowed.
 *
 * `closed` and `failed` are final: a new attempt is a new session, so stale events of the
 * old one (a late ICE state change, a socket closing) can never revive it.
 *
 * @module session-state
 */

/** @enum {string} */
const SessionState = Object.freeze({
    /** Created, not started. */
    IDLE: 'idle',
    /** Opening the signaling WebSocket and waiting for `welcome`. */
    CONNECTING: 'connecting',
    /** Welcomed: exchanging offer, answer and ICE candidates. */
    NEGOTIATING: 'negotiating',
    /** The media connection is up. */
    STREAMING: 'streaming',
    /** Ended on purpose (by the viewer or the server's `bye`). */
    CLOSED: 'closed',
    /** Ended by an error; the session's `reason` says which. */
    FAILED: 'failed',
});

const NEXT = Object.freeze({
    [SessionState.IDLE]: [SessionState.CONNECTING, SessionState.CLOSED, SessionState.FAILED],
    [SessionState.CONNECTING]: [SessionState.NEGOTIATING, SessionState.CLOSED, SessionState.FAILED],
    [SessionState.NEGOTIATING]: [SessionState.STREAMING, SessionState.CLOSED, SessionState.FAILED],
    [SessionState.STREAMING]: [SessionState.CLOSED, SessionState.FAILED],
    [SessionState.CLOSED]: [],
    [SessionState.FAILED]: [],
});

/**
 * Whether a session may go from one state to another.
 * @param {string} from
 * @param {string} to
 * @returns {boolean}
 */
export function canTransition(from, to) {
    return NEXT[from]?.includes(to) ?? false;
}

/**
 * Whether a state is final.
 * @param {string} state
 * @returns {boolean}
 */
export function isFinal(state) {
    return state === SessionState.CLOSED || state === SessionState.FAILED;
}

export default SessionState;
