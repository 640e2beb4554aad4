-- Run once by the postgres image when its data volume is first created: a second database for
-- Optuna studies beside MLflow's, owned by the same role.
CREATE DATABASE optuna OWNER ablate;
