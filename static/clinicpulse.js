// ClinicPulse browser client. The full client (stream, fallback polling,
// tab leadership, offline queue) is built in static/clinicpulse.js; see README.
export const version = '0.1.0';
