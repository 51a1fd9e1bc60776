"""The optimiser (and schedule) of an approach, from the partial factories its config gives."""


def make_optimizers(params, optimizer, scheduler=None):
    """``configure_optimizers``' return value from partial optimizer/scheduler factories."""
    opt = optimizer(params=params)
    return opt if scheduler is None else {"optimizer": opt, "lr_scheduler": scheduler(optimizer=opt)}
