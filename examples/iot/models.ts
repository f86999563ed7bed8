/**
 * Sensor models for the simulated fleet: deterministic for a given seed, advanced by explicit
 * time steps (no timers of their own), so tests and benchmarks can drive them.
 *
 * - thermostat: room temperature drifting towards a setpoint (first-order lag) with a slow
 *   random walk and measurement noise, plus relative humidity; controllable `setpoint` and `heating`.
 * - door: a contact that opens now and then (Poisson arrivals) and closes after a while;
 *   counts openings; controllable `locked` (a locked door stays shut).
 * - meter: a power meter — base load plus appliances switching on and off — with cumulative
 *   energy; controllable `relay` (off = no power).
 */

/** A small seeded PRNG (mulberry32): the same seed gives the same fleet. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export type ModelKind = 'thermostat' | 'door' | 'meter';

export type ModelValue = number | boolean;

/** A field as a model reports it. */
export interface ModelField {
  readonly name: string;
  readonly value: ModelValue;
  readonly unit?: string;
}

export interface SensorModel {
  readonly kind: ModelKind;
  /** Advances the model by `seconds` and returns its fields. */
  step(seconds: number): ModelField[];
  /** The current fields, without advancing. */
  fields(): ModelField[];
  /** Applies a control command; returns false for an unknown parameter. */
  set(parameter: string, value: ModelValue): boolean;
}

export class Thermostat implements SensorModel {
  readonly kind = 'thermostat';
  setpoint: number;
  heating = true;
  #temp: number;
  #offset = 0;
  #humidity: number;
  readonly #random: () => number;

  constructor(seed: number, setpoint = 21) {
    this.#random = rng(seed);
    this.setpoint = setpoint;
    this.#temp = setpoint - 2 + 4 * this.#random();
    this.#humidity = 40 + 15 * this.#random();
  }

  step(seconds: number): ModelField[] {
    const target = this.heating ? this.setpoint : 14; // heating off: the room cools to ambient
    // First-order lag (τ ≈ 30 s here, so the demo shows movement), plus a slow random walk.
    this.#temp += (target - this.#temp) * (1 - Math.exp(-seconds / 30));
    this.#offset = this.#offset * 0.98 + 0.05 * gaussian(this.#random) * Math.sqrt(seconds);
    this.#humidity = Math.min(90, Math.max(20, this.#humidity + 0.3 * gaussian(this.#random)));
    return this.fields();
  }

  fields(): ModelField[] {
    const measured = this.#temp + this.#offset + 0.05 * gaussian(this.#random);
    return [
      { name: 'temperature', value: round(measured, 2), unit: '°C' },
      { name: 'humidity', value: round(this.#humidity, 1), unit: '%' },
      { name: 'setpoint', value: this.setpoint, unit: '°C' },
      { name: 'heating', value: this.heating },
    ];
  }

  /** Test and demo hook: a sudden change (an open window, a heat wave). */
  disturb(deltaCelsius: number): void {
    this.#temp += deltaCelsius;
  }

  set(parameter: string, value: ModelValue): boolean {
    if (parameter === 'setpoint' && typeof value === 'number') this.setpoint = value;
    else if (parameter === 'heating' && typeof value === 'boolean') this.heating = value;
    else return false;
    return true;
  }
}

export class DoorContact implements SensorModel {
  readonly kind = 'door';
  open = false;
  locked = false;
  openings = 0;
  #closeIn = 0;
  readonly #random: () => number;
  /** Mean openings per hour. */
  readonly #rate: number;

  constructor(seed: number, openingsPerHour = 40) {
    this.#random = rng(seed);
    this.#rate = openingsPerHour;
  }

  step(seconds: number): ModelField[] {
    if (this.open) {
      this.#closeIn -= seconds;
      if (this.#closeIn <= 0) this.open = false;
    } else if (!this.locked && this.#random() < 1 - Math.exp((-this.#rate / 3600) * seconds)) {
      this.open = true;
      this.openings++;
      this.#closeIn = 2 + 10 * this.#random(); // held open 2–12 s
    }
    return this.fields();
  }

  fields(): ModelField[] {
    return [
      { name: 'open', value: this.open },
      { name: 'openings', value: this.openings },
      { name: 'locked', value: this.locked },
    ];
  }

  set(parameter: string, value: ModelValue): boolean {
    if (parameter !== 'locked' || typeof value !== 'boolean') return false;
    this.locked = value;
    if (value) this.open = false;
    return true;
  }
}

export class PowerMeter implements SensorModel {
  readonly kind = 'meter';
  relay = true;
  /** Cumulative energy, kWh. */
  energy: number;
  #appliances: { watts: number; on: boolean }[];
  #power = 0;
  readonly #random: () => number;

  constructor(seed: number) {
    this.#random = rng(seed);
    this.energy = round(1000 * this.#random(), 3);
    this.#appliances = [
      { watts: 120, on: true }, // fridge compressor
      { watts: 2000, on: false }, // kettle/heater
      { watts: 800, on: false }, // washing machine
    ];
  }

  step(seconds: number): ModelField[] {
    for (const a of this.#appliances) {
      // Each appliance toggles now and then (bigger loads run shorter).
      const p = 1 - Math.exp((-seconds * (a.on ? 1500 : 60)) / (a.watts * 60));
      if (this.#random() < p) a.on = !a.on;
    }
    const base = 60 + 5 * gaussian(this.#random);
    this.#power = this.relay ? Math.max(0, base + this.#appliances.reduce((s, a) => s + (a.on ? a.watts : 0), 0)) : 0;
    this.energy += (this.#power * seconds) / 3_600_000;
    return this.fields();
  }

  fields(): ModelField[] {
    return [
      { name: 'power', value: this.relay ? round(this.#power, 1) : 0, unit: 'W' },
      { name: 'energy', value: round(this.energy, 4), unit: 'kWh' },
      { name: 'relay', value: this.relay },
    ];
  }

  set(parameter: string, value: ModelValue): boolean {
    if (parameter !== 'relay' || typeof value !== 'boolean') return false;
    this.relay = value;
    return true;
  }
}

/** Agent i of a fleet: thermostats, doors and meters in turn. */
export function modelFor(index: number, seed = 1): SensorModel {
  const s = seed * 7919 + index * 104729;
  switch (index % 3) {
    case 0:
      return new Thermostat(s, 20 + (index % 4));
    case 1:
      return new DoorContact(s);
    default:
      return new PowerMeter(s);
  }
}
