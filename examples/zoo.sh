#!/usr/bin/env bash
# PDM policies through RL-Zoo: train PDM-PPO with the project's hyperparameter file and stock PPO with the zoo's own,
# watch the PDM agent, then plot both. hyperparams/ppo.yml holds the zoo's tuned values with
# policy 'sb3_pdm.PDMPolicy' and callback sb3_pdm.PDMCallback: no code, rl_zoo3 imports both by name.
#
#   bash examples/zoo.sh                    # CartPole-v1, 2 seeds x 100k steps per run (RL-Zoo's budget), 5-10 min
#   bash examples/zoo.sh 20000              # fewer steps
#   ENV_ID=Acrobot-v1 SEEDS="0 1 2" bash examples/zoo.sh
#   OPTIMIZE=1 bash examples/zoo.sh         # also a short Optuna search over PPO's and PDM's options
set -euo pipefail
cd "$(dirname "$0")/.."  # repository root: hyperparams/ and the sb3_pdm package

TIMESTEPS=${1:-${TIMESTEPS:-100000}}
ENV_ID=${ENV_ID:-CartPole-v1}
SEEDS=${SEEDS:-"0 1"}  # plot_from_file needs at least two runs per folder
LOGS=${LOGS:-logs/zoo_example}
EVAL_FREQ=$((TIMESTEPS / 4))  # four evaluations per run, for the plots
export MPLBACKEND=${MPLBACKEND:-Agg}  # plots to files, no window

# 1. Train: PDM-PPO (project's file) and stock PPO (zoo's file), same env, seeds and budget.
for SEED in $SEEDS; do
    python -m rl_zoo3.train --algo ppo --env "$ENV_ID" --conf-file hyperparams/ppo.yml -n "$TIMESTEPS" --seed "$SEED" \
        --eval-freq "$EVAL_FREQ" --eval-episodes 5 -f "$LOGS/pdm"
    python -m rl_zoo3.train --algo ppo --env "$ENV_ID" -n "$TIMESTEPS" --seed "$SEED" \
        --eval-freq "$EVAL_FREQ" --eval-episodes 5 -f "$LOGS/sb3"
done

# 2. Enjoy: run the latest PDM agent (add --load-best for the best evaluation's; drop --no-render to watch).
python -m rl_zoo3.enjoy --algo ppo --env "$ENV_ID" -f "$LOGS/pdm" --no-render -n 1000

# 3. Plot: training curves of the PDM runs, then evaluations of both runs side by side (saved as a PNG).
python -m rl_zoo3.plots.plot_train --algo ppo --env "$ENV_ID" -f "$LOGS/pdm"
python -m rl_zoo3.plots.all_plots -a ppo -e "$ENV_ID" -f "$LOGS/pdm" "$LOGS/sb3" -l PDM SB3 --no-display -o "$LOGS/results"
python -m rl_zoo3.plots.plot_from_file -i "$LOGS/results.pkl" -l PDM SB3 -o "$LOGS/results.png" --format png

# 4. Optional: the project's wrapper, which also registers maskable_ppo and adds PDM's options to the zoo's Optuna
#    search (pdm_local_lr, pdm_guidance_coef, pdm_feature_scale). Same arguments as rl_zoo3.train.
if [ "${OPTIMIZE:-0}" = 1 ]; then
    python -m sb3_pdm.zoo train --algo ppo --env "$ENV_ID" --conf-file hyperparams/ppo.yml -n "$TIMESTEPS" --seed 0 \
        -optimize --n-trials 4 --n-evaluations 2 --eval-episodes 5 --n-jobs 1 -f "$LOGS/tuning"
fi

echo "runs: $LOGS/pdm $LOGS/sb3, figure: $LOGS/results.png"
