"""Consumer `link-crawler`: Plane's crawl_work_item_link_title."""
