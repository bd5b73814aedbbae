-- Slices, points and time covered per interval type of each run (the demo's query).
SELECT run_number, interval_type, count(*) AS slices, sum(n_points) AS points,
       round(sum(duration_seconds) / 60, 1) AS minutes, sum(n_nan) AS nan_R, sum(n_negative_R) AS negative_R
FROM reflectivity
GROUP BY ALL
ORDER BY run_number, interval_type
