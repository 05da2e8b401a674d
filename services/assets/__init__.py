"""Consumer `assets`: Plane's get_asset_object_metadata and copy_s3_objects_of_description_and_assets."""
