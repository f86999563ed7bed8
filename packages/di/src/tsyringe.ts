/**
 * tsyringe, with its Reflect polyfill loaded first (tsyringe throws at import without one).
 * Every module of this package imports tsyringe through here, so import order never matters.
 */
import 'reflect-metadata';
export { container, inject, injectable, delay } from 'tsyringe';
export type { DependencyContainer, InjectionToken } from 'tsyringe';
