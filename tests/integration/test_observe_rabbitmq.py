"""The RabbitMQ watch on the lab's broker: a memory alarm raised and cleared between two looks (a fault healed
early, as when the workload it blocked ends) is in a look all the same. CI once missed such an alarm: the
nemesis was healed 0.45 s after it started because the run's 200 jobs were done, and looks came every 0.5 s."""

from __future__ import annotations

import time

from regression_pipelines.kit.nemeses import lab as lab_admin
from regression_pipelines.kit.observe import rabbitmq as mq
from regression_pipelines.lab.settings import LabSettings

# One CLI call raises the alarm and clears it 0.3 s later: the watermark's setter raises or clears at once.
BRIEF_ALARM = (
    "Was = vm_memory_monitor:get_vm_memory_high_watermark(), vm_memory_monitor:set_vm_memory_high_watermark(0),"
    " timer:sleep(300), vm_memory_monitor:set_vm_memory_high_watermark(Was), ok."
)
PERIOD_S = 4.0  # far longer than the alarm: only the polls between looks can see it


def test_an_alarm_shorter_than_the_look_period_is_in_the_next_look(lab: LabSettings) -> None:
    spawn = mq.lab_spawn("127.0.0.1", lab.rabbitmq_port)
    assert spawn is not None
    watch = mq.EvalStream(spawn, "/", [], [], period_s=PERIOD_S).start()
    try:
        first = len(watch.samples)
        assert first >= 1 and watch.samples[0].answered, watch.samples
        lab_admin.rabbitmqctl(lab, "eval", BRIEF_ALARM)
        assert "resource_limit" not in lab_admin.rabbitmqctl(lab, "eval", "rabbit_alarm:get_alarms().")
        deadline = time.monotonic() + 3 * PERIOD_S + 20
        while not any(look.alarms for look in watch.samples) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        looks = watch.stop()
    alarmed = [look for look in looks if look.alarms]
    assert alarmed, [(look.at, look.alarms, look.error) for look in looks]
    assert alarmed[0].alarms[0].startswith("memory alarm (node "), alarmed[0].alarms
    assert not looks[0].alarms  # the first look was before it
