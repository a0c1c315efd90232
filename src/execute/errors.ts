// The executor's own refusal: raised by every state machine, caught by the controllers.
import { WeirError } from '../runtime/errors.js';

/** A migration that must not go on: the plan was wrong for the data (e.g. rows that would not convert). */
export class MigrationRefusedError extends WeirError {
  constructor(message: string) {
    super(message, { retriable: false, reason: 'MigrationRefused' });
  }
}
