/**
 * Conversations and context: the calls of `/conversations...`, `/users/{user_id}` and
 * `POST /context` go here, once the server has them (the conversations issue builds them).
 *
 * Nothing is declared yet on purpose: the client has one method per endpoint of the server
 * it ships with, and these endpoints do not exist yet. To add them, follow memories.ts:
 * declare the request/answer types in types.ts, one function per endpoint here returning a
 * `Call` (retry "write" for the idempotent writes, "read" for reads and searches), then one
 * method each in client.ts's "conversations and context" section, and a test in
 * test/conversations.test.ts against the real server.
 */

export {};
