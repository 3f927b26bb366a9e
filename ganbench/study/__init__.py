"""Studies: variants x seeds as MLflow parent and nested runs, on Optuna."""
