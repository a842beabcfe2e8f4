// The anomaly detectors a policy can name (`anomaly.detectors`), apart from the schema so the code
// that reads a policy does not load the schema's builder.
export const ANOMALY_DETECTORS = ["new_destination", "volume", "beacon", "dns"] as const;
export type AnomalyDetectorName = (typeof ANOMALY_DETECTORS)[number];
