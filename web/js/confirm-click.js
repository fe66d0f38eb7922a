/**
 * Two-click confirmation for destructive buttons (Stop): the first click arms the button
 * and changes its label, a second click within a few seconds confirms; otherwise it disarms.
 *
 * @module confirm-click
 */

/** How long a button stays armed after the first click. */
export const CONFIRM_MS = 4000;

/**
 * Handles one click on `button`.
 * @param {{dataset: object, textContent: string, disabled: boolean}} button
 * @param {object} options
 * @param {string} options.label - the button's normal label, restored when it disarms
 * @param {number} [options.confirmMs=CONFIRM_MS] - how long the button stays armed
 * @param {(fn: () => void, ms: number) => unknown} [options.schedule=setTimeout]
 * @returns {boolean} true when this click confirms the action
 */
export default function confirmClick(button, { label, confirmMs = CONFIRM_MS, schedule = setTimeout }) {
    if (button.dataset.confirm !== 'yes') {
        button.dataset.confirm = 'yes';
        button.textContent = 'Click again to stop';
        schedule(() => {
            if (button.dataset.confirm === 'yes' && !button.disabled) {
                delete button.dataset.confirm;
                button.textContent = label;
            }
        }, confirmMs);
        return false;
    }
    delete button.dataset.confirm;
    return true;
}
