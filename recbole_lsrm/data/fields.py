"""Names of the fields the all-position data path adds to RecBole's interactions, and the item
field that names an item's domain (the Amazon mix's ``.item``)."""

DOMAIN_FIELD = "domain"


def target_list_field(config) -> str:
    """The (B, T) next-item targets of a training window, e.g. ``target_item_id_list``."""
    return "target_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


def target_time_list_field(config) -> str:
    """The (B, T) times of a training window's targets, e.g. ``target_timestamp_list`` (HSTU's ``time_query: target``)."""
    return "target_" + config["TIME_FIELD"] + config["LIST_SUFFIX"]
