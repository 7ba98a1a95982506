import { ApiError, type userRoutes } from '@stowage/api';
import type { HandlersOf } from './app.js';
import type { HandlerDeps } from './handlers.js';

const notYet = async (): Promise<never> => {
  throw new ApiError('unsupported', 'users and sessions are being built');
};

/** Sessions, users and the audit log (routes-users.ts in @stowage/api). */
export function userHandlers(_deps: HandlerDeps): HandlersOf<typeof userRoutes> {
  return {
    signIn: notYet,
    getSession: notYet,
    signOut: notYet,
    createUser: notYet,
    listUsers: notYet,
    updateUser: notYet,
    deleteUser: notYet,
    listAudit: notYet,
  };
}
